"""Range checks of every numeric command-line option, applied when the arguments are parsed (before any work).

Each sub-command declares its options with plain ``type=int`` / ``type=float``; :func:`apply_bounds` then wraps
every such option with the :class:`Bound` this table gives for it (by command and option name, else by option
name, else a default that only rejects NaN, infinities and absurd magnitudes). A value out of range ends the
command with one line naming the option and the value as typed, and exit code 2 (see :class:`OneLineParser`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = ["Bound", "BOUNDS", "OneLineParser", "apply_bounds", "bound_for", "numeric_options"]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (``worldwarp CMD: error: ...``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Bound:
    """Allowed values of a numeric option: ``lo <= x <= hi`` (``<`` where the end is open); always finite."""

    kind: type
    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        lo = "(" if self.lo_open else "["
        hi = ")" if self.hi_open else "]"
        fmt = (lambda v: f"{int(v)}") if self.kind is int else (lambda v: f"{v:g}")
        return f"{lo}{fmt(self.lo)}, {fmt(self.hi)}{hi}"

    def converter(self) -> Callable[[str], Any]:
        kind = self.kind

        def convert(text: str) -> Any:
            try:
                value = int(text) if kind is int else float(text)
            except (TypeError, ValueError):
                what = "a whole number" if kind is int else "a number"
                raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
            if isinstance(value, float) and not math.isfinite(value):
                raise argparse.ArgumentTypeError(f"must be a finite number in {self.describe()}, got {text!r}")
            below = value <= self.lo if self.lo_open else value < self.lo
            above = value >= self.hi if self.hi_open else value > self.hi
            if below or above:
                raise argparse.ArgumentTypeError(f"must lie in {self.describe()}, got {text!r}")
            return value

        convert.__name__ = kind.__name__  # argparse names the type in its messages
        return convert


def _i(lo: float, hi: float) -> Bound:
    return Bound(int, lo, hi)


def _f(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Bound:
    return Bound(float, lo, hi, lo_open, hi_open)


SEED = _i(0, 2**32 - 1)
SIDE = _i(8, 8192)

# (command, option dest) -> bound; "*" matches any command. Commands with actions are "scenes render" etc.
BOUNDS: dict[tuple[str, str], Bound] = {
    # generate / demo (and the same names elsewhere unless overridden below)
    ("*", "frames"): _i(2, 100_000),
    ("*", "height"): SIDE,
    ("*", "width"): SIDE,
    ("*", "chunk"): _i(2, 1000),
    ("*", "overlap"): _i(1, 999),
    ("*", "strength"): _f(0, 1),
    ("*", "steps"): _i(1, 10_000),
    ("*", "cfg"): _f(0, 100),
    ("*", "cache_steps"): _i(0, 100_000),
    ("*", "seed"): SEED,
    ("*", "fps"): _f(0, 1000, lo_open=True),
    ("*", "fov"): _f(0, 180, lo_open=True, hi_open=True),
    ("*", "speed"): _f(0, 1000, lo_open=True),
    ("*", "scale"): _f(0, 1e6, lo_open=True),
    ("*", "look_at"): _f(0, 1e6, lo_open=True),
    ("*", "port"): _i(1, 65535),
    # scenes
    ("scenes render", "frames"): _i(1, 100_000),
    ("scenes render", "supersample"): _i(1, 16),
    ("scenes contact-sheet", "count"): _i(1, 10_000),
    ("scenes contact-sheet", "rooms"): _i(0, 10_000),
    ("scenes contact-sheet", "start"): SEED,
    ("scenes contact-sheet", "cols"): _i(1, 100),
    # trajectory: --frames is the number of cameras
    ("trajectory", "frames"): _i(1, 100_000),
    # eval
    ("eval", "stride"): _i(1, 10_000),
    ("eval", "max_scenes"): _i(1, 10_000_000),
    ("eval", "stereo_sources"): _i(1, 1000),
    ("eval", "curve_stride"): _i(0, 100_000),
    ("eval", "pose_stride"): _i(1, 10_000),
    ("eval", "count"): _i(1, 10_000_000),
    ("eval", "list_seed"): SEED,
    # train
    ("train", "steps"): _i(1, 100_000_000),
    ("train", "batch"): _i(1, 100_000),
    ("train", "lr"): _f(0, 1, lo_open=True),
    ("train", "warmup"): _i(0, 100_000_000),
    ("train", "min_lr_ratio"): _f(0, 1),
    ("train", "frames"): _i(1, 10_000),
    ("train", "frame_stride"): _i(1, 10_000),
    ("train", "save_every"): _i(1, 100_000_000),
    ("train", "history_prob"): _f(0, 1),
    ("train", "sigma_shift"): _f(0, 1000, lo_open=True),
    ("train", "max_history"): _i(0, 10_000),
    ("train", "tiny_width"): _i(1, 100_000),
    ("train", "tiny_depth"): _i(1, 1000),
    ("train", "tiny_pixel_width"): _i(0, 1024),
    ("train", "clean_warped_prob"): _f(0, 1),
    ("train", "pure_hole_prob"): _f(0, 1),
    ("train", "ema_decay"): _f(0, 1, hi_open=True),
}

DEFAULT_BOUNDS = {int: _i(-(2**31), 2**31 - 1), float: _f(-1e12, 1e12)}


def bound_for(command: str, dest: str, kind: type) -> Bound:
    """The bound of option ``dest`` of ``command`` ("generate", "scenes render", ...)."""
    b = BOUNDS.get((command, dest)) or BOUNDS.get(("*", dest)) or DEFAULT_BOUNDS[kind]
    if b.kind is not kind:  # an option named like a float option but taking ints (or the reverse)
        b = Bound(kind, b.lo, b.hi, b.lo_open, b.hi_open)
    return b


def _subparsers(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                cmd = f"{path} {name}".strip()
                yield cmd, sub
                yield from _subparsers(sub, cmd)


def numeric_options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action, Bound]]:
    """Every numeric option of every (sub-)command: ``(command, action, bound)`` (after :func:`apply_bounds`)."""
    for cmd, sub in _subparsers(parser):
        for action in sub._actions:
            bound = getattr(action, "_worldwarp_bound", None)
            if bound is not None:
                yield cmd, action, bound


def apply_bounds(parser: argparse.ArgumentParser) -> None:
    """Wrap every ``type=int`` / ``type=float`` option of every sub-command with its range check."""
    for cmd, sub in _subparsers(parser):
        for action in sub._actions:
            if action.type in (int, float):
                bound = bound_for(cmd, action.dest, action.type)
                action.type = bound.converter()
                action._worldwarp_bound = bound  # type: ignore[attr-defined]
