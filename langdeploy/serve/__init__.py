"""The HTTP layer: the only place that imports LangServe."""

from langdeploy.serve.app import create_app

__all__ = ["create_app"]
