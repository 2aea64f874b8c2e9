"""The evaluation runner: generate each scene's frames with a method, score them, write a results file.

A **method** is anything with the signature :data:`Method`: given an :class:`EvalScene` whose cameras run up
to the largest requested frame and the list of frame indices wanted, it returns the generated frames
``(len(indices), 3, H, W)`` in [0, 1], in the order of ``indices``. It may read the start image and start
depth (``scene.start_image``, ``scene.start_depth``) and every camera, never the other ground-truth frames
(the ``oracle-warp`` sanity baseline is the one, labelled, exception).

:data:`METHODS` maps a name to a :class:`MethodSpec`: a factory taking a typed config dataclass and returning a
Method. The baselines here need no diffusion model:

* ``copy-first``: every frame is the start image (the score of not moving at all);
* ``inpaint``: the start frame is z-buffer splatted into each target camera with its depth
  (:func:`worldwarp.warp.point_cloud_warp`), then the holes are filled by ``cv2.inpaint``;
* ``oracle-warp``: the same warp, with holes filled from the ground truth (an upper bound for any hole filler
  given this warp; scores the warp itself).

The pipeline registers "worldwarp", "no-cache", "point-cache", "full-noise", ... with :func:`register_method`.

Protocol (DESIGN.md section 2): score the scene's frames (50 and 200 on RealEstate10K/DL3DV) with PSNR, SSIM,
LPIPS (when weights are given), FID over scenes (when a feature network is given), PSNR inside and outside the
start frame's warp holes (when depth is known), and optionally camera accuracy of the generated path with the
same estimator run on the ground-truth frames as a control.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from worldwarp.errors import InputError, WorldWarpError
from worldwarp.eval.datasets import EvalScene
from worldwarp.eval.fid import FeatureExtractor, FIDConfig
from worldwarp.eval.lpips import LPIPS, LPIPSConfig
from worldwarp.eval.metrics import color_error, hf_ratio, masked_psnr, psnr, ssim
from worldwarp.eval.poses import PoseEstimatorConfig, camera_errors, check_reconstruction, estimate_poses

__all__ = [
    "METHODS",
    "RESULTS_FORMAT",
    "BenchmarkConfig",
    "CopyFirstConfig",
    "InpaintConfig",
    "Method",
    "MethodSpec",
    "OracleWarpConfig",
    "SkipScene",
    "build_method",
    "merge_results",
    "register_method",
    "run_benchmark",
    "select_shard",
    "shard_from_environment",
    "shard_output_path",
    "warp_start_frame",
    "write_results",
]

RESULTS_FORMAT = "worldwarp-eval/1"

Method = Callable[[EvalScene, list[int]], Tensor]
"""(scene with cameras up to the largest index, frame indices) -> generated frames (len(indices), 3, H, W)."""


class SkipScene(WorldWarpError):
    """Raised by a method for a scene it cannot handle (e.g. no start depth); the runner records the reason."""


@dataclass
class MethodSpec:
    """A registered method: ``factory(config_type(...)) -> Method``."""

    name: str
    factory: Callable[[Any], Method]
    config_type: type
    description: str


METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, factory: Callable[[Any], Method], config_type: type, description: str) -> None:
    """Add (or replace) a method in :data:`METHODS`; ``config_type`` must be a dataclass with defaults."""
    if not is_dataclass(config_type):
        raise TypeError(f"config_type of method {name!r} must be a dataclass")
    METHODS[name] = MethodSpec(name, factory, config_type, description)


def build_method(name: str, config: Any | None = None) -> Method:
    """Instantiate a registered method with ``config`` (default: its config type's defaults)."""
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}: choose one of {', '.join(sorted(METHODS))}")
    spec = METHODS[name]
    if config is None:
        config = spec.config_type()
    elif not isinstance(config, spec.config_type):
        raise TypeError(f"method {name!r} takes a {spec.config_type.__name__}, got {type(config).__name__}")
    return spec.factory(config)


# ---------------------------------------------------------------------------------------------- baselines
@dataclass
class CopyFirstConfig:
    """``copy-first`` has no settings."""


@dataclass
class InpaintConfig:
    """Settings of the ``inpaint`` baseline.

    Attributes:
        point_radius: splat radius in pixels of each start-frame point (see WarpConfig.point_radius).
        near: points closer than this are dropped.
        inpaint_radius: neighbourhood radius of cv2.inpaint in pixels.
        algorithm: ``"telea"`` or ``"ns"`` (Navier-Stokes).
    """

    point_radius: float = 1.0
    near: float = 1e-3
    inpaint_radius: int = 3
    algorithm: Literal["telea", "ns"] = "telea"


@dataclass
class OracleWarpConfig:
    """Settings of the ``oracle-warp`` sanity baseline (the warp's ``point_radius`` and ``near``)."""

    point_radius: float = 1.0
    near: float = 1e-3


def warp_start_frame(scene: EvalScene, indices: Sequence[int], point_radius: float = 1.0, near: float = 1e-3):
    """Splat the start frame with its depth into the cameras ``indices``: a WarpResult with ``mask`` = covered.

    Raises :class:`SkipScene` when the scene has no start depth.
    """
    from worldwarp.warp import WarpConfig, point_cloud_warp

    depth = scene.start_depth
    if depth is None:
        raise SkipScene(f"scene {scene.name} has no start depth")
    image = scene.start_image
    cfg = WarpConfig(point_radius=point_radius, near=near, erosion=0)
    return point_cloud_warp(image[None], depth[None].to(image), scene.cameras[0], scene.cameras[list(indices)], cfg)


def _copy_first(config: CopyFirstConfig) -> Method:
    def method(scene: EvalScene, indices: list[int]) -> Tensor:
        return scene.start_image[None].expand(len(indices), -1, -1, -1).clone()

    return method


def _inpaint(config: InpaintConfig) -> Method:
    if config.algorithm not in ("telea", "ns"):
        raise InputError(f"inpaint algorithm must be 'telea' or 'ns', got {config.algorithm!r}")

    def method(scene: EvalScene, indices: list[int]) -> Tensor:
        from worldwarp.fill import inpaint_holes

        warp = warp_start_frame(scene, indices, config.point_radius, config.near)
        return inpaint_holes(warp.rgb.float(), warp.mask, config.inpaint_radius, config.algorithm)

    return method


def _oracle_warp(config: OracleWarpConfig) -> Method:
    def method(scene: EvalScene, indices: list[int]) -> Tensor:
        warp = warp_start_frame(scene, indices, config.point_radius, config.near)
        gt = scene.frames(indices).to(warp.rgb)
        return torch.where(warp.mask[:, None], warp.rgb, gt)

    return method


register_method("copy-first", _copy_first, CopyFirstConfig, "every frame is the start image")
register_method("inpaint", _inpaint, InpaintConfig, "point-splat warp of the start frame + cv2.inpaint of holes")
register_method("oracle-warp", _oracle_warp, OracleWarpConfig, "point-splat warp, holes from the ground truth")


# ---------------------------------------------------------------------------------------------- runner
@dataclass
class BenchmarkConfig:
    """What the runner measures besides PSNR/SSIM.

    Attributes:
        curve_stride: also score every ``curve_stride``-th frame (for the metric-vs-frame plots); 0 = only the
            scene's frames.
        camera_accuracy: estimate the generated path's poses (pycolmap) and compare with the ground truth.
        pose_stride: frames 0, s, 2s, ... up to the last scored frame go to the pose estimator.
        pose_control: run the same estimator on the ground-truth frames (the measurable floor).
        pose: estimator settings.
        lpips: LPIPS weights (None: LPIPS is not computed and the report says so).
        fid: FID feature network (None: FID is not computed and the report says so).
        hole_metrics: PSNR inside/outside the start frame's warp holes (scenes with depth only).
        hole_point_radius: splat radius of the warp that defines those holes (1 closes the cracks of a
            slowly zooming path; 0 marks exactly the pixels no start-frame point lands in).
        save_frames: folder for generated and ground-truth frames (``<scene>/gen_00050.png``), or None.
        device: where metric networks run (the caller's choice; "cpu" by default).
    """

    curve_stride: int = 0
    camera_accuracy: bool = False
    pose_stride: int = 1
    pose_control: bool = True
    pose: PoseEstimatorConfig = field(default_factory=PoseEstimatorConfig)
    lpips: LPIPSConfig | None = None
    fid: FIDConfig | None = None
    hole_metrics: bool = True
    hole_point_radius: float = 1.0
    save_frames: Path | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.curve_stride < 0 or self.pose_stride < 1:
            raise InputError(
                f"curve_stride must be >= 0 and pose_stride >= 1, got {self.curve_stride}, {self.pose_stride}"
            )


def _jsonable(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        obj = asdict(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def select_shard(scenes: Sequence[EvalScene], index: int, count: int) -> list[tuple[int, EvalScene]]:
    """Scenes of shard ``index`` of ``count`` (round robin over the list) with their position in the list."""
    if count < 1 or not 0 <= index < count:
        raise InputError(f"shard must be i/n with 0 <= i < n, got {index}/{count}")
    return [(k, s) for k, s in enumerate(scenes) if k % count == index]


def shard_from_environment() -> tuple[int, int]:
    """(process index, process count) under ``accelerate launch`` (or torchrun); (0, 1) otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    from accelerate import PartialState

    state = PartialState()
    return int(state.process_index), int(state.num_processes)


def shard_output_path(out: Path, index: int, count: int) -> Path:
    """``results.json`` -> ``results.shard1of4.json`` when sharded; unchanged for a single shard."""
    out = Path(out)
    return out if count == 1 else out.with_name(f"{out.stem}.shard{index}of{count}{out.suffix}")


def _score_indices(scene: EvalScene, config: BenchmarkConfig) -> list[int]:
    last = max(scene.frame_indices)
    idx = set(scene.frame_indices)
    if config.curve_stride:
        idx |= set(range(config.curve_stride, last + 1, config.curve_stride))
    return sorted(idx)


def _pose_indices(scene: EvalScene, config: BenchmarkConfig) -> list[int]:
    last = max(scene.frame_indices)
    idx = list(range(0, last + 1, config.pose_stride))
    return idx if idx[-1] == last else [*idx, last]


def _camera_record(frames: Tensor, scene: EvalScene, indices: list[int], config: BenchmarkConfig) -> dict:
    est = estimate_poses(frames, scene.cameras.K[0], config.pose)
    err = camera_errors(est.c2w, scene.cameras.c2w[indices], est.registered)
    rec = err.to_dict()
    rec.update(
        frames=indices,
        unregistered=[indices[i] for i in est.unregistered],
        mean_track_length=est.mean_track_length,
        mean_reprojection_error=est.mean_reprojection_error,
        seed=est.seed,
        sfm_failure=check_reconstruction(est),
    )
    return rec


def _save_frames(folder: Path, scene: EvalScene, indices: list[int], gen: Tensor, gt: Tensor) -> None:
    from worldwarp.io.images import save_image

    for i, k in enumerate(indices):
        save_image(folder / scene.name / f"gen_{k:05d}.png", gen[i])
        save_image(folder / scene.name / f"gt_{k:05d}.png", gt[i])


def _check_output(out: Tensor, scene: EvalScene, indices: list[int], name: str) -> Tensor:
    want = (len(indices), 3, scene.height, scene.width)
    if not isinstance(out, Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise WorldWarpError(f"method {name} returned {got} for scene {scene.name}, expected {want}")
    if not torch.isfinite(out).all():
        raise WorldWarpError(f"method {name} returned non-finite values for scene {scene.name}")
    return out.detach().float().cpu().clamp(0, 1)


def run_benchmark(
    scenes: Sequence[EvalScene],
    method: Method,
    method_name: str,
    config: BenchmarkConfig,
    *,
    shard: tuple[int, int] = (0, 1),
    dataset: str = "",
    split: str = "",
    method_config: Any = None,
    progress: bool = False,
) -> tuple[dict, dict[str, np.ndarray] | None]:
    """Evaluate ``method`` on this shard's scenes.

    Returns the results document (JSON-ready dict, see docs/evaluation.md) and, when FID is configured, the
    per-scene feature arrays ``{"gen_<slot>": (S, D), "gt_<slot>": (S, D), "order": (S,)}`` to store beside it.
    """
    device = torch.device(config.device)
    lpips_net = LPIPS.from_folder(config.lpips).to(device) if config.lpips is not None else None
    fid_net = FeatureExtractor.load(config.fid) if config.fid is not None else None
    records: list[dict] = []
    feats: dict[str, list[np.ndarray]] = {}
    order_with_feats: list[int] = []
    chosen = select_shard(scenes, *shard)
    iterator: Any = chosen
    if progress:
        from tqdm import tqdm

        iterator = tqdm(chosen, desc=f"eval {method_name}", unit="scene")
    for order, scene in iterator:
        rec: dict[str, Any] = {"name": scene.name, "order": order, "frame_indices": list(scene.frame_indices)}
        if "start_depth" in scene.meta:
            rec["start_depth"] = scene.meta["start_depth"]
        records.append(rec)
        if scene.skip_reason:
            rec["skipped"] = scene.skip_reason
            continue
        t0 = time.perf_counter()
        score_idx = _score_indices(scene, config)
        pose_idx = _pose_indices(scene, config) if config.camera_accuracy else []
        request = sorted(set(score_idx) | set(pose_idx))
        try:
            raw = method(scene.prefix(max(request) + 1), request)
        except SkipScene as e:
            rec["skipped"] = str(e)
            continue
        gen_all = _check_output(raw, scene, request, method_name)
        pos = {k: i for i, k in enumerate(request)}
        gen = gen_all[[pos[k] for k in score_idx]]
        gt = scene.frames(score_idx).float().cpu()
        metrics: dict[str, list[float]] = {
            "psnr": psnr(gen, gt).tolist(),
            "ssim": ssim(gen, gt).tolist(),
            "hf_ratio": hf_ratio(gen, gt).tolist(),
            "color_error": color_error(gen, gt).tolist(),
        }
        if lpips_net is not None:
            with torch.no_grad():
                metrics["lpips"] = [float(lpips_net(gen[i : i + 1].to(device), gt[i : i + 1].to(device))) for i in
                                    range(len(score_idx))]  # fmt: skip
        if config.hole_metrics and scene.load_depth is not None:
            holes = ~warp_start_frame(scene, score_idx, config.hole_point_radius).mask.cpu()
            metrics["psnr_holes"] = masked_psnr(gen, gt, holes).tolist()
            metrics["psnr_visible"] = masked_psnr(gen, gt, ~holes).tolist()
            metrics["hole_fraction"] = holes.flatten(1).double().mean(1).tolist()
        rec["metrics"] = {str(k): {m: v[i] for m, v in metrics.items()} for i, k in enumerate(score_idx)}
        if fid_net is not None:
            slot_pos = [score_idx.index(k) for k in scene.frame_indices]
            fg = fid_net(gen[slot_pos].to(device)).numpy()
            fr = fid_net(gt[slot_pos].to(device)).numpy()
            for s in range(len(slot_pos)):
                feats.setdefault(f"gen_{s}", []).append(fg[s])
                feats.setdefault(f"gt_{s}", []).append(fr[s])
            order_with_feats.append(order)
        if config.camera_accuracy:
            rec["camera"] = _camera_record(gen_all[[pos[k] for k in pose_idx]], scene, pose_idx, config)
            if config.pose_control:
                rec["camera_control"] = _camera_record(scene.frames(pose_idx), scene, pose_idx, config)
        if config.save_frames is not None:
            _save_frames(Path(config.save_frames), scene, score_idx, gen, gt)
        rec["seconds"] = time.perf_counter() - t0
    doc = {
        "format": RESULTS_FORMAT,
        "dataset": dataset,
        "split": split,
        "method": method_name,
        "method_config": _jsonable(method_config) if method_config is not None else {},
        "benchmark_config": _jsonable(config),
        "shards": [list(shard)],
        "lpips": config.lpips is not None,
        "fid": config.fid is not None,
        "scenes": records,
    }
    arrays = None
    if fid_net is not None:
        arrays = {k: np.stack(v) for k, v in feats.items()}
        arrays["order"] = np.asarray(order_with_feats, dtype=np.int64)
    return doc, arrays


# ---------------------------------------------------------------------------------------------- files
def features_path(results_path: Path) -> Path:
    """Where the FID features of a results file live: ``results.json`` -> ``results.fid.npz``."""
    results_path = Path(results_path)
    return results_path.with_name(f"{results_path.stem}.fid.npz")


def write_results(path: Path, doc: dict, features: dict[str, np.ndarray] | None = None) -> None:
    """Write a results document (and its FID features) atomically."""
    from worldwarp.io.atomic import atomic_write, atomic_write_json

    path = Path(path)
    doc = dict(doc)
    if features is not None:
        buf = io.BytesIO()
        np.savez(buf, **features)
        with atomic_write(features_path(path), "wb") as f:
            f.write(buf.getvalue())
        doc["fid_features"] = features_path(path).name
    else:
        doc["fid_features"] = None
    atomic_write_json(path, doc)


def read_results(path: Path) -> tuple[dict, dict[str, np.ndarray] | None]:
    """Read a results file and its FID features (if it has any); errors name the file."""
    import json

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: results file not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != RESULTS_FORMAT:
        raise InputError(f"{path}: not a worldwarp results file (format {RESULTS_FORMAT})")
    feats = None
    if doc.get("fid_features"):
        fp = path.with_name(doc["fid_features"])
        if not fp.is_file():
            raise InputError(f"{fp}: FID features of {path.name} not found")
        with np.load(fp, allow_pickle=False) as z:
            feats = {k: z[k] for k in z.files}
    return doc, feats


def merge_results(
    parts: Sequence[tuple[dict, dict[str, np.ndarray] | None]],
) -> tuple[dict, dict[str, np.ndarray] | None]:
    """Merge shard results of one dataset/split/method into one document (scenes in list order)."""
    if not parts:
        raise InputError("nothing to merge")
    keys = ("dataset", "split", "method", "method_config", "benchmark_config", "lpips", "fid")
    first = parts[0][0]
    for doc, _ in parts[1:]:
        for k in keys:
            if doc.get(k) != first.get(k):
                raise InputError(f"cannot merge results with different {k}: {first.get(k)!r} vs {doc.get(k)!r}")
    scenes = [s for doc, _ in parts for s in doc["scenes"]]
    orders = [s["order"] for s in scenes]
    if len(set(orders)) != len(orders):
        raise InputError("cannot merge: the same scene appears in two results files (overlapping shards?)")
    merged = {k: first.get(k) for k in ("format", *keys)}
    merged["shards"] = sorted(sh for doc, _ in parts for sh in doc["shards"])
    merged["scenes"] = sorted(scenes, key=lambda s: s["order"])
    feats = None
    if first.get("fid"):
        if any(f is None for _, f in parts):
            raise InputError("cannot merge: some results files lack their FID features")
        order = np.concatenate([f["order"] for _, f in parts if f is not None])
        sort = np.argsort(order, kind="stable")
        feats = {"order": order[sort]}
        names = {k for _, f in parts if f is not None for k in f if k != "order"}
        for k in sorted(names):
            feats[k] = np.concatenate([f[k] for _, f in parts if f is not None])[sort]
    return merged, feats
