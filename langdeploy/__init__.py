"""langdeploy: put a large language model into production the way careful teams do it."""

__version__ = "0.1.0"
