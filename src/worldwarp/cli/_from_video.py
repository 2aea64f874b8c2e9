"""Options and messages of camera paths from videos, for ``worldwarp trajectory --from-video`` and
``worldwarp generate --trajectory VIDEO`` (the work is :mod:`worldwarp.trajectory.from_video`)."""

from __future__ import annotations

import argparse
import sys

from worldwarp.errors import InputError

NORMALIZE_CHOICES = ("extent", "step", "depth")


def add_video_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "camera path from a video",
        "structure from motion on the clip's frames; the path is relative to its first camera and scaled as "
        "--normalize says; unregistered frames are interpolated (see docs/video_paths.md)",
    )
    g.add_argument("--from-video", metavar="VIDEO", default=None, help="take the camera path of this clip (.mp4 ...)")
    g.add_argument(
        "--intrinsics", metavar="FX,FY,CX,CY", default=None,
        help="the video's intrinsics in pixels of its frames (default: --fov if given, else the focal is estimated)",
    )  # fmt: skip
    g.add_argument("--every", type=int, default=None, help="SfM on every N-th frame (default: at most 40 frames)")
    g.add_argument(
        "--normalize", choices=NORMALIZE_CHOICES, default="extent",
        help="unit of the written path: its extent (largest distance from the first camera), its longest step, "
        "or the scene depth seen from the first camera (default: extent)",
    )  # fmt: skip
    g.add_argument("--no-cache", action="store_true", help="extract again even if this clip's path is cached")


def progress_printer(quiet: bool = False):
    """A ``progress(fraction, message)`` that prints each new message on stderr when it is a terminal."""
    last = [""]
    quiet = quiet or not sys.stderr.isatty()

    def show(fraction: float, message: str) -> None:
        if quiet or message == last[0]:
            return
        last[0] = message
        print(f"worldwarp: {message} ({100 * fraction:.0f}%)", file=sys.stderr, flush=True)

    return show


def extract(video: str, args: argparse.Namespace, quiet: bool = False):
    from worldwarp.trajectory.from_video import VideoPathConfig, extract_video_path, parse_intrinsics

    config = VideoPathConfig(
        fov_x_deg=getattr(args, "video_fov", None),
        intrinsics=parse_intrinsics(args.intrinsics) if getattr(args, "intrinsics", None) else None,
        every=getattr(args, "every", None),
    )
    vp = extract_video_path(video, config, cache=not getattr(args, "no_cache", False), progress=progress_printer(quiet))
    for w in vp.warnings:
        print(f"worldwarp: warning: {w}", file=sys.stderr)
    return vp


def run_trajectory(args: argparse.Namespace) -> int:
    """``worldwarp trajectory --from-video VIDEO``."""
    from worldwarp.trajectory.extend import change_speed, fit_length
    from worldwarp.trajectory.from_video import scale_translations
    from worldwarp.trajectory.io import write_cameras

    if args.source is not None:
        raise InputError("give either a preset spec / camera file or --from-video, not both")
    if args.out is None and args.preview is None:
        raise InputError("nothing to do: give --out FILE and/or --preview PNG")
    if args.look_at is not None:
        raise InputError("--look-at applies to presets only")
    if args.fov is not None and args.intrinsics is not None:
        raise InputError("give the video's --fov or its --intrinsics, not both")
    if (args.height is None) != (args.width is None):
        raise InputError("give both --height and --width, or neither")
    args.video_fov = args.fov
    vp = extract(args.from_video, args)
    cams, _ = vp.normalized(args.normalize)
    if args.speed != 1.0:
        cams = change_speed(cams, args.speed)
    if args.scale != 1.0:
        if not args.scale > 0:
            raise InputError(f"scale must be > 0, got {args.scale}")
        cams = scale_translations(cams, args.scale)
    if args.frames is not None:
        cams = fit_length(cams, args.frames, args.fit)
    if args.height is not None:
        cams = cams.resize(args.height, args.width)
    print(f"{args.from_video}: {vp.summary(args.normalize)}")
    if args.out is not None:
        fmt = write_cameras(args.out, cams, args.format)
        print(f"wrote {len(cams)} cameras ({fmt}, {cams.width}x{cams.height}) to {args.out}")
    if args.preview is not None:
        from worldwarp.trajectory.preview import render_preview

        render_preview(cams, args.preview, title=f"{args.from_video}: {len(cams)} cameras")
        print(f"wrote preview to {args.preview}")
    return 0


def prepare_generation(video: str, frames: int, speed: float, quiet: bool = False) -> dict:
    """Extract (or read from the cache) the path of ``video`` with progress on stderr, before generating;
    returns what run.json records about it."""
    from worldwarp.trajectory.from_video import speed_note

    if not speed > 0:
        raise InputError(f"speed must be > 0, got {speed}")
    vp = extract(video, argparse.Namespace(), quiet=quiet)
    if not quiet:
        print(f"worldwarp: {video}: {vp.summary()}", file=sys.stderr)
        print(
            "worldwarp: the path is scaled so that the median scene depth the video's first frame sees equals the "
            "start image's median depth (times --scale)",
            file=sys.stderr,
        )
        print(f"worldwarp: {speed_note(vp, frames, speed)}", file=sys.stderr)
    return {
        "trajectory_video": {
            "sha256": vp.digest,
            "summary": vp.summary(),
            "speed": speed_note(vp, frames, speed),
            "warnings": vp.warnings,
            "scene_depth": vp.scene_depth,
        }
    }
