"""User-facing errors: the CLI and UI print their message as one line and exit with code 2."""

from __future__ import annotations

__all__ = ["WorldWarpError", "InputError", "check_finite"]


class WorldWarpError(Exception):
    """Base class of every error whose message is meant for the user (no traceback is shown)."""


class InputError(WorldWarpError, ValueError):
    """Bad user input: a corrupt image, a bad camera file, an unknown preset, a missing file."""


def check_finite(config: object) -> None:
    """Raise :class:`InputError` if a float field of the dataclass ``config`` (or a float in a tuple field) is NaN
    or infinite; range checks alone let NaN through (every comparison with it is False)."""
    import math
    from dataclasses import fields

    for f in fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise InputError(f"{type(config).__name__}.{f.name} must be a finite number, got {value}")
