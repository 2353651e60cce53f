"""Sensors shared by every backend: BEV raster, object list, ego vector (layouts in ``layout``)."""
