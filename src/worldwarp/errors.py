"""User-facing errors: the CLI and UI print their message as one line and exit with code 2."""

from __future__ import annotations

__all__ = ["WorldWarpError", "InputError"]


class WorldWarpError(Exception):
    """Base class of every error whose message is meant for the user (no traceback is shown)."""


class InputError(WorldWarpError, ValueError):
    """Bad user input: a corrupt image, a bad camera file, an unknown preset, a missing file."""
