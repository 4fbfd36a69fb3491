"""latbench's version, recorded in every table's provenance."""

__version__ = "0.2.0"
