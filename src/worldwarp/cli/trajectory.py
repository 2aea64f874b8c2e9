"""``worldwarp trajectory``: make, convert, resample and preview camera paths."""

from __future__ import annotations

import argparse

from worldwarp.errors import InputError

FORMATS = ("re10k", "transforms", "colmap", "npz", "cameras")
FIT_MODES = ("resample", "extrapolate", "loop", "pingpong")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "trajectory",
        help="make, convert or preview a camera path",
        description=(
            "Write a camera path from a preset spec (e.g. 'orbit', 'dolly_in+pan_left', 'orbit+zoom_in,static': "
            "'+' moves together, ',' one after the other) or from a camera file (RealEstate10K .txt, "
            "transforms.json, COLMAP folder, release .npz, cameras.json) or from a video (--from-video), and "
            "optionally draw a preview PNG."
        ),
    )
    p.add_argument("source", metavar="SPEC_OR_FILE", nargs="?", default=None, help="preset spec or camera file")
    p.add_argument("--frames", type=int, default=None, help="number of cameras (required for a preset)")
    p.add_argument("--out", default=None, help="output camera file (.txt, .json, cameras.json, .npz, .colmap)")
    p.add_argument("--format", choices=FORMATS, default=None, help="output format (default: from --out's name)")
    p.add_argument("--in-format", choices=FORMATS, default=None, help="input format (default: detected)")
    p.add_argument("--preview", default=None, metavar="PNG", help="write a top/side view of the path")
    p.add_argument("--height", type=int, default=None, help="image height (presets: 480)")
    p.add_argument("--width", type=int, default=None, help="image width (presets: 720)")
    p.add_argument(
        "--fov",
        type=float,
        default=None,
        help="horizontal field of view in degrees (presets: 60; --from-video: the video's, estimated if not given)",
    )
    p.add_argument("--speed", type=float, default=1.0, help="amount of every move (files: travel faster)")
    p.add_argument("--scale", type=float, default=1.0, help="scene scale (translation unit)")
    p.add_argument("--look-at", type=float, default=None, help="look-at distance (default: 2 x scale)")
    p.add_argument("--fit", choices=FIT_MODES, default="resample", help="how a file is brought to --frames")
    from worldwarp.cli._from_video import add_video_arguments

    add_video_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    from worldwarp.trajectory.from_video import is_video_file
    from worldwarp.trajectory.io import write_cameras
    from worldwarp.trajectory.load import load_trajectory, looks_like_path

    if args.from_video is None and args.source is not None and is_video_file(args.source):
        args.from_video, args.source = args.source, None  # `worldwarp trajectory clip.mp4` means --from-video
    if args.from_video is not None:
        from worldwarp.cli._from_video import run_trajectory

        return run_trajectory(args)
    if args.source is None:
        raise InputError("give a preset spec or camera file, or --from-video VIDEO")
    if args.out is None and args.preview is None:
        raise InputError("nothing to do: give --out FILE and/or --preview PNG")
    if args.fov is not None and looks_like_path(args.source):
        raise InputError("--fov applies to presets only (a camera file has its own intrinsics)")
    cams = load_trajectory(
        args.source,
        args.frames,
        format=args.in_format,
        height=args.height,
        width=args.width,
        fov_x_deg=args.fov,
        speed=args.speed,
        scale=args.scale,
        look_at_distance=args.look_at,
        fit=args.fit,
    )
    travelled = float((cams.centers[1:] - cams.centers[:-1]).norm(dim=-1).sum()) if len(cams) > 1 else 0.0
    if args.out is not None:
        fmt = write_cameras(args.out, cams, args.format)
        print(
            f"wrote {len(cams)} cameras ({fmt}, {cams.width}x{cams.height}) to {args.out}; path length {travelled:.4g}"
        )
    if args.preview is not None:
        from worldwarp.trajectory.preview import render_preview

        render_preview(cams, args.preview, title=f"{args.source}: {len(cams)} cameras, {cams.width}x{cams.height}")
        print(f"wrote preview to {args.preview}")
    return 0
