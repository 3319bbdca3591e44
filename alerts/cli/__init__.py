"""The ``alimcast`` command line."""

from alerts.cli.app import main

__all__ = ["main"]
