"""The ``tidings`` command line (private): `app` is the typer application, `main` its entry."""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
