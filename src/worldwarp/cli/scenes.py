"""``worldwarp scenes``: render procedural worlds with exact depth and cameras, or a contact sheet.

worldwarp scenes render --seed 3 --trajectory random --frames 49 --out out/scene3
worldwarp scenes render --seed 3 --trajectory "orbit" --kind open --out out/orbit
worldwarp scenes contact-sheet --out sheet.png
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("scenes", help="render procedural worlds with exact depth and cameras")
    sub = p.add_subparsers(dest="scenes_command", metavar="ACTION", required=True)
    r = sub.add_parser("render", help="render one scene along a camera path (transforms.json layout)")
    r.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    r.add_argument("--trajectory", default="random", help="'random' (default) or a preset spec, e.g. 'orbit'")
    r.add_argument("--frames", type=int, default=49, help="number of frames (default 49)")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--height", type=int, default=256)
    r.add_argument("--width", type=int, default=384)
    r.add_argument("--kind", choices=["room", "open"], default=None, help="scene kind (default: from the seed)")
    r.add_argument("--speed", type=float, default=1.0, help="speed of a preset trajectory (default 1)")
    r.add_argument("--supersample", type=int, default=3, help="anti-aliasing samples per axis (default 3)")
    c = sub.add_parser("contact-sheet", help="a PNG grid of first frames of several scenes")
    c.add_argument("--out", required=True, help="output PNG")
    c.add_argument("--count", type=int, default=12, help="number of scenes (default 12)")
    c.add_argument("--rooms", type=int, default=8, help="how many of them are rooms (default 8)")
    c.add_argument("--start", type=int, default=0, help="first seed to consider (default 0)")
    c.add_argument("--cols", type=int, default=4)
    c.add_argument("--height", type=int, default=160)
    c.add_argument("--width", type=int, default=240)
    return p


def run(args: argparse.Namespace) -> int:
    from worldwarp.errors import InputError

    for name in ("height", "width"):
        if getattr(args, name) < 8:
            raise InputError(f"--{name} must be >= 8, got {getattr(args, name)}")
    if args.scenes_command == "render":
        return _render(args)
    if args.count < 1 or not 0 <= args.rooms <= args.count:
        raise InputError(f"need --count >= 1 and 0 <= --rooms <= --count, got {args.count}, {args.rooms}")
    return _sheet(args)


def _render(args: argparse.Namespace) -> int:
    from worldwarp.errors import InputError
    from worldwarp.scenes.clips import make_clip
    from worldwarp.scenes.export import write_clip
    from worldwarp.scenes.render import RenderConfig

    if args.frames < 1:
        raise InputError(f"--frames must be >= 1, got {args.frames}")
    clip = make_clip(
        args.seed,
        args.frames,
        args.height,
        args.width,
        kind=args.kind,
        trajectory=args.trajectory,
        speed=args.speed,
        render_config=RenderConfig(supersample=args.supersample),
    )
    path = write_clip(clip, args.out)
    print(f"wrote {len(clip)} frames of {clip.kind} scene {clip.seed} to {path.parent}")
    return 0


def _sheet(args: argparse.Namespace) -> int:
    import os
    import tempfile
    from pathlib import Path

    from PIL import Image

    from worldwarp.scenes.contact_sheet import contact_sheet, mixed_seeds

    seeds = mixed_seeds(args.count, args.rooms, args.start)
    sheet = contact_sheet(seeds, args.height, args.width, args.cols)
    img = (sheet.permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).byte().numpy()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".png")
    os.close(fd)
    try:
        Image.fromarray(img).save(tmp, format="PNG", optimize=True)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote a contact sheet of seeds {seeds} to {out}")
    return 0
