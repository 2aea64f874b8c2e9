"""The ``worldwarp`` command.

Each sub-command lives in its own module of this package and exposes ``add_parser(subparsers)`` and
``run(args) -> int``. Modules import their heavy dependencies inside ``run`` so ``worldwarp --help`` stays fast.
A :class:`~worldwarp.errors.WorldWarpError` (or a camera error, or a missing file) becomes one line on stderr
and exit code 2, never a traceback; so does a bad option, and every numeric option is range-checked while the
arguments are parsed (:mod:`worldwarp.cli.options`), before any work starts.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# name of the sub-command -> module in worldwarp.cli; a module that does not exist yet is skipped.
COMMANDS = ["generate", "demo", "trajectory", "scenes", "export", "eval", "train", "ui"]


def build_parser() -> argparse.ArgumentParser:
    from worldwarp import __version__
    from worldwarp.cli.options import OneLineParser, apply_bounds

    parser = OneLineParser(
        prog="worldwarp",
        description="One image and a camera path in, a long 3D-consistent fly-through video out.",
    )
    parser.add_argument("--version", action="version", version=f"worldwarp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"worldwarp.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"worldwarp.cli.{name}":
                continue
            raise
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    apply_bounds(parser)  # every numeric option is range-checked while parsing, before any work
    return parser


def configure_runtime() -> None:
    """Settings that must precede torch's import: OpenMP workers sleep instead of spinning while they wait, which
    keeps a CPU run from slowing itself (and everything else) down several times on a busy machine. Users can
    override it by setting OMP_WAIT_POLICY themselves."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: Sequence[str] | None = None) -> int:
    configure_runtime()
    from worldwarp.cameras import CameraError
    from worldwarp.errors import WorldWarpError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a bad option (one line already printed), --help or --version
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (WorldWarpError, CameraError) as e:
        print(f"worldwarp: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"worldwarp: error: file not found: {e.filename or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("worldwarp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
