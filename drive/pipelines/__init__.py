"""Pipelines behind the ``drive`` commands; each takes its composed config."""
