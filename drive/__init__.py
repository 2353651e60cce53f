"""The ``drive`` command, its Hydra configs (``drive/conf``) and the pipelines that wire the
packages together. Nothing outside ``drive/`` imports from here."""
