"""The package version: one place, read by pyproject.toml, the Excel report and the cluster check."""

__version__ = "0.1.0"
