"""The `langdeploy` command: parses, calls the library, prints. Nothing else happens here.

Each group of commands lives in its own module and is added to the main app below.
"""

from __future__ import annotations

from langdeploy.cli.main import app, main

__all__ = ["app", "main"]
