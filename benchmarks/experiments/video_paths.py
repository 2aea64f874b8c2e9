"""Benchmark: camera paths taken from videos, against the exact cameras of rendered procedural clips.

Each clip (100 frames of 480x720 by default) is rendered with its exact cameras, encoded to H.264 mp4 with the
project's video writer (so compression is part of the test), and given to
:func:`worldwarp.trajectory.from_video.extract_video_path` with its default settings (focal length estimated,
every k-th frame to SfM, global SfM after essential-matrix verification, the incremental mapper only as a
fallback), not cached. The recovered path is compared with the true cameras of the
frames it covers after one Sim(3) alignment (Umeyama on the centres, orientations added to the rotation
objective, as the evaluator does): mean rotation error (rad), ATE (RMSE and mean of the centre errors) as a
share of the true path's extent (largest distance from its first camera); targets 0.02 rad and 2%. Beside it,
the TUM-style ATE (Umeyama on the centres alone) and the rotation error under that alignment. Wall and CPU
time per clip are measured with COLMAP limited to ``--threads`` threads. Then a few short clips that must fail
(pure rotation, a textureless clip) show what the tool says. Writes docs/benchmarks/video_paths.md.

    python benchmarks/experiments/video_paths.py [--frames 100] [--size 480x720] [--threads 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from worldwarp.eval.poses import rotation_distance, umeyama
from worldwarp.io.atomic import atomic_write_json
from worldwarp.io.video import write_video
from worldwarp.scenes import make_clip
from worldwarp.trajectory.from_video import VideoPathConfig, VideoPathError, extract_video_path
from worldwarp.trajectory.io import read_cameras, write_cameras

# (scene seed, kind, trajectory): the dev suite's first scenes of each kind and its two preset paths
CLIPS = [
    (1001, "room", "random"),
    (1002, "room", "random"),
    (1003, "open", "random"),
    (1007, "room", "pan_left,dolly_in"),
    (1008, "open", "orbit"),
]
# short clips that no path may be taken from
FAILURES = [
    ("pure rotation (pan_left, open scene 1003)", 1003, "open", "pan_left"),
    ("textureless (flat grey frames with sensor noise)", None, None, None),
]


def render_clip(work: Path, seed: int, kind: str, trajectory: str, frames: int, height: int, width: int):
    """(mp4 path, true cameras) of a rendered clip, cached in ``work``."""
    stem = f"{seed}_{kind}_{trajectory.replace(',', '-')}_{frames}x{height}x{width}"
    video, cams_file = work / f"{stem}.mp4", work / f"{stem}.cameras.json"
    if not (video.is_file() and cams_file.is_file()):
        clip = make_clip(seed, frames, height, width, kind=kind, trajectory=trajectory)  # type: ignore[arg-type]
        write_video(video, clip.frames, fps=16)
        write_cameras(cams_file, clip.cameras)
    return video, read_cameras(cams_file)


def textureless_clip(work: Path, frames: int, height: int, width: int) -> Path:
    video = work / f"textureless_{frames}x{height}x{width}.mp4"
    if not video.is_file():
        gen = torch.Generator().manual_seed(0)
        x = 0.5 + 0.01 * torch.randn(frames, 3, height, width, generator=gen)
        write_video(video, x.clamp(0, 1), fps=16)
    return video


def path_errors(est: torch.Tensor, gt: torch.Tensor, orientations: bool = True) -> tuple[float, float, float]:
    """(mean rotation error rad, ATE RMSE / extent, mean centre error / extent) after Sim(3) alignment (fitted to
    the centres and, with ``orientations``, the orientations too)."""
    rots = dict(rot_src=est[:, :3, :3], rot_dst=gt[:, :3, :3]) if orientations else {}
    s, R, t = umeyama(est[:, :3, 3], gt[:, :3, 3], **rots)
    centres = s * est[:, :3, 3] @ R.T + t
    err = (centres - gt[:, :3, 3]).norm(dim=-1)
    extent = float((gt[:, :3, 3] - gt[:1, :3, 3]).norm(dim=-1).max())
    rot = rotation_distance(R[None] @ est[:, :3, :3], gt[:, :3, :3])
    return float(rot.mean()), float(err.square().mean().sqrt()) / extent, float(err.mean()) / extent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", default="480x720", help="HxW")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clips", type=int, default=len(CLIPS), help="use the first N clips")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "worldwarp-bench-video-paths"))
    ap.add_argument(
        "--out", default=str(Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "video_paths.md")
    )
    args = ap.parse_args()
    H, W = (int(v) for v in args.size.lower().split("x"))
    N = args.frames
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    config = VideoPathConfig(num_threads=args.threads)
    rows, loads = [], []
    for seed, kind, traj in CLIPS[: args.clips]:
        video, gt = render_clip(work, seed, kind, traj, N, H, W)
        true_fov = math.degrees(2 * math.atan(0.5 * W / float(gt.K[0, 0, 0])))
        loads.append(os.getloadavg()[0])
        t, c = time.perf_counter(), time.process_time()
        try:
            vp = extract_video_path(video, config, cache=False)
        except VideoPathError as e:
            rows.append((seed, kind, traj, time.perf_counter() - t, time.process_time() - c, None, str(e), true_fov))
            print(rows[-1], flush=True)
            continue
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        loads.append(os.getloadavg()[0])
        atomic_write_json(work / f"{video.stem}.result.json", {"path": vp.to_dict(), "wall": wall, "cpu": cpu})
        g = gt.c2w[vp.first_frame : vp.last_frame + 1]
        rot, ate, mean = path_errors(vp.cameras.c2w, g)
        reg = torch.tensor(vp.registered) - vp.first_frame
        rot_reg, _, mean_reg = path_errors(vp.cameras.c2w[reg], g[reg])
        rot_tum, ate_tum, _ = path_errors(vp.cameras.c2w, g, orientations=False)
        res = (vp, rot, ate, mean, rot_reg, mean_reg, ate_tum, rot_tum)
        rows.append((seed, kind, traj, wall, cpu, res, "", true_fov))
        print(seed, kind, traj, f"{wall:.1f}s", vp.summary(), rot, ate, mean, flush=True)

    fail_rows = []
    for label, seed, kind, traj in FAILURES:
        n, h, w = 40, 240, 360
        video = textureless_clip(work, n, h, w) if seed is None else render_clip(work, seed, kind, traj, n, h, w)[0]
        t = time.perf_counter()
        try:
            vp = extract_video_path(video, config, cache=False)
            said = f"(no error) {vp.summary()}"
        except VideoPathError as e:
            said = str(e)
        fail_rows.append((label, n, h, w, time.perf_counter() - t, said.replace(str(video.name), "clip.mp4")))
        print(fail_rows[-1], flush=True)

    ok = [r for r in rows if r[5] is not None]
    lines = [
        "# Camera paths from videos: accuracy and speed",
        "",
        f"`python benchmarks/experiments/video_paths.py --threads {args.threads}` ({N}-frame {H}x{W} procedural clips "
        "with exact "
        f"cameras, encoded to H.264 mp4 (crf 18) first; default extraction settings: focal length estimated, "
        f"every {math.ceil((N - 1) / (config.max_sfm_frames - 1))}rd frame and the last to SfM, two-view poses from "
        f"essential matrices (max_H_inlier_ratio {config.max_h_inlier_ratio:g}), {config.mapper} SfM (seed "
        f"{config.seeds[0]}; the incremental mapper with seeds {','.join(map(str, config.seeds))} only if it "
        f"registers under half the frames), rotation-only test before mapping; COLMAP with {args.threads} "
        "threads; pycolmap "
        f"{__import__('pycolmap').__version__}, torch {torch.__version__}, {platform.machine()}; 1-minute load "
        f"average {min(loads):.1f}-{max(loads):.1f} while measuring on a machine with {os.cpu_count()} cores "
        "shared with other jobs).",
        "",
        "Errors after Sim(3) alignment over every frame the path covers (registered and interpolated); targets: "
        "rotation <= 0.02 rad, ATE <= 2% of the true path's extent (largest distance from its first camera).",
        "",
        "| clip (seed, scene, path) | frames covered | registered / interpolated | fov est. / true (deg) | "
        "rotation (rad) | ATE RMSE / extent | mean centre error / extent | registered only: rot., centre | "
        "TUM ATE RMSE (centres-only alignment), rotation then | mapper | wall (s) | CPU (s) | targets met | warnings |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for seed, kind, traj, wall, cpu, res, err, fov in rows:
        if res is None:
            lines.append(f"| {seed} {kind} {traj} | failed: {err} | | | | | | | | | {wall:.0f} | {cpu:.0f} | no | |")
            continue
        vp, rot, ate, mean, rot_reg, mean_reg, ate_tum, rot_tum = res
        met = "yes" if rot <= 0.02 and ate <= 0.02 else "no"
        lines.append(
            f"| {seed} {kind} {traj} | {vp.first_frame}-{vp.last_frame} | {len(vp.registered)} / {vp.interpolated} | "
            f"{vp.fov_x_deg:.1f} / {fov:.1f} | {rot:.4f} | {100 * ate:.2f}% | {100 * mean:.2f}% | "
            f"{rot_reg:.4f}, {100 * mean_reg:.2f}% | {100 * ate_tum:.2f}%, {rot_tum:.4f} | {vp.mapper} | {wall:.0f} | "
            f"{cpu:.0f} | "
            f"{met} | {'; '.join(vp.warnings)} |"
        )
    if ok:
        mean_rot = sum(r[5][1] for r in ok) / len(ok)
        mean_ate = sum(r[5][2] for r in ok) / len(ok)
        lines += [
            "",
            f"Mean over the {len(ok)} reconstructed clips: rotation {mean_rot:.4f} rad, ATE {100 * mean_ate:.2f}% of "
            f"the extent; wall time per clip {sum(r[3] for r in ok) / len(ok):.0f} s "
            f"(CPU {sum(r[4] for r in ok) / len(ok):.0f} s).",
        ]
    lines += [
        "",
        "Clips no path may be taken from (40 frames of 240x360; what `worldwarp trajectory --from-video` prints "
        "after `worldwarp: error:`, exit code 2):",
        "",
        "| clip | wall (s) | message |",
        "|---|---|---|",
    ]
    for label, _, _, _, wall, said in fail_rows:
        lines.append(f"| {label} | {wall:.0f} | {said} |")
    lines += [
        "",
        "Wall times depend on the machine's load (see above); CPU time is the process's own, COLMAP's threads "
        "included. Each clip's recovered path is saved beside its video in the work folder "
        "(`<clip>.result.json`). What the numbers mean, clip by clip: [../video_paths.md](../video_paths.md), "
        "section *Accuracy and speed*.",
        "",
    ]
    from worldwarp.io.atomic import atomic_write_text

    out = Path(args.out)
    atomic_write_text(out, "\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
