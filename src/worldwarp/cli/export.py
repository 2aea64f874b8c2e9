"""``worldwarp export SRC --out DST``: 3D caches and cameras of a run into other formats.

* ``SRC`` a Gaussian file (``.ply`` in the 3DGS layout or antimatter15 ``.splat``) -> ``DST`` ``.ply``;
* ``SRC`` a finished run folder (with ``run.json``) -> its cameras into ``DST`` in any camera format
  (``.txt`` RealEstate10K, ``transforms.json``, ``cameras.json``, ``.npz``, a COLMAP folder), and with
  ``--merge-caches`` all its chunk caches merged into one PLY.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

CAMERA_FORMATS = ("re10k", "transforms", "colmap", "npz", "cameras")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help="export Gaussians (.ply/.splat) or a run's cameras and caches",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="SRC", help="a .ply / .splat file, or a run folder written by generate")
    p.add_argument("--out", required=True, metavar="DST", help="output file (or COLMAP folder)")
    p.add_argument("--format", choices=CAMERA_FORMATS, help="camera format (default: from DST's name)")
    p.add_argument("--merge-caches", action="store_true", help="run folder: merge every chunk's cache into DST")
    return p


def run(args: argparse.Namespace) -> int:
    from worldwarp.errors import InputError
    from worldwarp.splat.gaussians import Gaussians

    src = Path(args.source)
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
    if src.is_file():
        suffix = src.suffix.lower()
        if suffix not in (".ply", ".splat"):
            raise InputError(f"{src}: expected a .ply or .splat file, or a run folder")
        if Path(args.out).suffix.lower() != ".ply":
            raise InputError(f"{args.out}: Gaussians are exported as .ply")
        g = Gaussians.load_ply(src) if suffix == ".ply" else Gaussians.load_splat(src)
        g.save_ply(args.out)
        print(f"wrote {g.num} Gaussians to {args.out}")
        return 0
    if not (src / "run.json").is_file():
        raise InputError(f"{src}: not a finished run folder (no run.json)")
    if args.merge_caches:
        plies = sorted((src / "cache").glob("chunk_*.ply"))
        if not plies:
            raise InputError(f"{src / 'cache'}: no chunk caches to merge")
        merged = Gaussians.cat([Gaussians.load_ply(p) for p in plies])
        merged.save_ply(args.out)
        print(f"merged {len(plies)} caches ({merged.num} Gaussians) into {args.out}")
        return 0
    from worldwarp.trajectory.io import read_cameras, write_cameras

    cams = read_cameras(src / "cameras.json", "cameras")
    fmt = write_cameras(args.out, cams, args.format)
    print(f"wrote {len(cams)} cameras to {args.out} ({fmt})")
    return 0
