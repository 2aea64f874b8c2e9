"""Plane-sweep stereo on an exactly rendered synthetic scene: accuracy, validity, range, invariances, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from worldwarp.cameras import Cameras, intrinsics_from_fov, look_at
from worldwarp.errors import InputError
from worldwarp.geometry.base import available_estimators, get_estimator
from worldwarp.geometry.stereo import (
    StereoDepth,
    StereoDepthConfig,
    StereoDepthWarning,
    auto_depth_range,
    count_consistent_views,
    effective_window,
    plane_sweep_depth,
    select_neighbours,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # small workloads: one thread (tests/conftest.py)

H, W = 48, 64
BACK_Z = 5.0  # fronto-parallel textured backdrop z = 5 (world = reference camera frame)
TILT_P0 = (-0.6, 0.0, 3.2)  # centre of the tilted textured patch
TILT_N = (0.45, 0.0, -1.0)  # its normal (turned about the y axis)
TILT_HALF = 0.9  # half side of the square patch
FLAT = (1.0, 2.2, -1.2, 0.0)  # x0, x1, y0, y1 of a constant-colour square on the backdrop
FLAT_COLOUR = (0.55, 0.45, 0.35)
OFFSETS = ((0.0, 0.0), (0.5, 0.0), (-0.5, 0.0), (0.0, 0.4), (0.0, -0.4))  # camera centres (x, y) at z = 0


def _noise(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 32, 32, generator=g, dtype=torch.float64)


def _texture(tex: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Bilinear noise texture (3, P) at plane coordinates (a, b) in [-4, 4] (cells of 0.25 units)."""
    grid = torch.stack([a / 4, b / 4], dim=-1).reshape(1, 1, -1, 2)
    return F.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0]


def _cameras(scale: float = 1.0) -> Cameras:
    eyes = torch.tensor([[x, y, 0.0] for x, y in OFFSETS], dtype=torch.float64) * scale
    target = torch.tensor([0.0, 0.0, 4.5], dtype=torch.float64) * scale
    K = intrinsics_from_fov(H, W, fov_x_deg=60)
    return Cameras(look_at(eyes, target.expand_as(eyes)), K, H, W)


def _render(cams: Cameras, scale: float = 1.0, ss: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The scene scaled by ``scale`` seen by ``cams``, float64.

    Returns images (N, 3, H, W) (each pixel the mean of ss x ss samples), z-depth at the pixel centres (N, H, W)
    and labels at the pixel centres (N, H, W): 0 textured backdrop, 1 tilted patch, 2 constant-colour square.
    """
    n = len(cams)
    i, j, ki, kj = torch.meshgrid(
        torch.arange(H, dtype=torch.float64),
        torch.arange(W, dtype=torch.float64),
        torch.arange(ss, dtype=torch.float64),
        torch.arange(ss, dtype=torch.float64),
        indexing="ij",
    )
    u, v = j + (kj + 0.5) / ss, i + (ki + 0.5) / ss
    pix = torch.stack([u, v, torch.ones_like(u)], dim=-1).reshape(-1, 3)
    back_tex, tilt_tex = _noise(0), _noise(1)
    normal = torch.tensor(TILT_N, dtype=torch.float64)
    normal = normal / normal.norm()
    e2 = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    e1 = torch.linalg.cross(e2, normal)
    p0 = torch.tensor(TILT_P0, dtype=torch.float64) * scale
    images, depths, labels = [], [], []
    for k in range(n):
        R, o = cams.c2w[k, :3, :3], cams.c2w[k, :3, 3]
        d = pix @ torch.linalg.inv(cams.K[k]).T @ R.T  # world ray per unit z-depth: X = o + z d
        t_back = (BACK_Z * scale - o[2]) / d[:, 2]
        xb, yb = (o[None, :2] + t_back[:, None] * d[:, :2]).unbind(-1)
        colour = _texture(back_tex, xb / scale, yb / scale)
        flat = (xb / scale > FLAT[0]) & (xb / scale < FLAT[1]) & (yb / scale > FLAT[2]) & (yb / scale < FLAT[3])
        colour = torch.where(flat[None], torch.tensor(FLAT_COLOUR, dtype=torch.float64)[:, None], colour)
        t_tilt = ((p0 - o) @ normal) / (d @ normal)
        rel = o[None] + t_tilt[:, None] * d - p0
        a, b = rel @ e1 / scale, rel @ e2 / scale
        hit = (t_tilt > 0) & (t_tilt < t_back) & (a.abs() < TILT_HALF) & (b.abs() < TILT_HALF)
        colour = torch.where(hit[None], _texture(tilt_tex, 2 * a, 2 * b), colour)
        z = torch.where(hit, t_tilt, t_back)
        label = torch.where(hit, 1, torch.where(flat, 2, 0))
        hi_res = colour.reshape(3, H, W, ss, ss).permute(0, 1, 3, 2, 4).reshape(1, 3, H * ss, W * ss)
        images.append(F.avg_pool2d(hi_res, ss)[0])
        depths.append(z.reshape(H, W, ss, ss)[:, :, ss // 2, ss // 2])
        labels.append(label.reshape(H, W, ss, ss)[:, :, ss // 2, ss // 2])
    return torch.stack(images), torch.stack(depths), torch.stack(labels)


@pytest.fixture(scope="module")
def scene() -> tuple[Cameras, torch.Tensor, torch.Tensor, torch.Tensor]:
    cams = _cameras()
    images, depth, labels = _render(cams)
    return cams, images.float(), depth, labels


def _near(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Pixels within ``radius`` (chessboard) of ``mask`` (..., H, W)."""
    m = mask.float().reshape(-1, 1, *mask.shape[-2:])
    return (F.max_pool2d(m, 2 * radius + 1, 1, radius) > 0).reshape(mask.shape)


def _accuracy(depth: torch.Tensor, valid: torch.Tensor, truth: torch.Tensor, tol: float) -> float:
    rel = (depth.double() - truth).abs() / truth
    return float((rel[valid] <= tol).double().mean())


# ---------------------------------------------------------------------------------------------- accuracy
def test_estimate_recovers_the_synthetic_scene(scene):
    cams, images, truth, labels = scene
    pred = StereoDepth().estimate(images, cams)
    assert pred.metric is True
    assert pred.depth.shape == pred.valid.shape == pred.confidence.shape == (5, H, W)
    assert pred.depth.dtype == pred.confidence.dtype == torch.float32 and pred.valid.dtype == torch.bool
    flat = labels == 2
    textured, flat_inside = ~_near(flat, 2), ~_near(~flat, 2)  # 2 px away from the square's edge
    assert int(flat_inside[0].sum()) == 81
    for k in range(5):
        valid = pred.valid[k]
        assert _accuracy(pred.depth[k], valid, truth[k], 0.03) >= 0.95  # measured 0.963 .. 0.972
        assert _accuracy(pred.depth[k], valid & (labels[k] == 1), truth[k], 0.03) >= 0.97  # the tilted patch
        assert float(valid[textured[k]].double().mean()) >= 0.8  # measured 0.85 .. 0.94
        assert not valid[flat_inside[k]].any()  # no texture, no depth
    assert torch.equal(pred.depth > 0, pred.valid)
    assert torch.equal(pred.confidence > 0, pred.valid)
    assert float(pred.confidence.max()) <= 1.0


def test_plane_sweep_with_a_given_range_single_and_double_precision(scene):
    cams, images, truth, labels = scene
    nb = [3, 4, 1, 2]
    cfg = StereoDepthConfig(depth_range=(2.5, 6.0))
    depth, valid, conf = plane_sweep_depth(images[0], images[nb], cams[0], cams[nb], cfg)
    assert depth.dtype == conf.dtype == torch.float32
    assert _accuracy(depth, valid, truth[0], 0.03) >= 0.93  # measured 0.943 (no consistency check here)
    assert float(valid.double().mean()) >= 0.85
    assert float(depth[valid].min()) >= 2.5 and float(depth[valid].max()) <= 6.0
    d64, v64, c64 = plane_sweep_depth(images[0].double(), images[nb].double(), cams[0], cams[nb], cfg)
    assert d64.dtype == c64.dtype == torch.float64
    assert _accuracy(d64, v64, truth[0], 0.03) >= 0.93
    # a single source (no best-half selection): still right where it sees
    d1, v1, _ = plane_sweep_depth(images[0], images[1:2], cams[0], cams[1:2], cfg)
    assert _accuracy(d1, v1, truth[0], 0.03) >= 0.85


def test_automatic_range_brackets_the_scene(scene):
    cams, images, truth, _ = scene
    near, far = auto_depth_range(images[0], images[1:], cams[0], cams[1:])
    lo, hi = float(truth[0].min()), float(truth[0].max())  # 2.84 .. 5.0
    assert 0.7 * lo <= near <= lo  # measured 2.36
    assert hi <= far <= 2.0 * hi  # measured 8.63


def test_deterministic(scene):
    cams, images, _, _ = scene
    a = StereoDepth().estimate(images[:3], cams[:3])
    b = StereoDepth().estimate(images[:3], cams[:3])
    assert torch.equal(a.depth, b.depth) and torch.equal(a.valid, b.valid) and torch.equal(a.confidence, b.confidence)


def test_scale_equivariance(scene):
    cams, images, _, _ = scene
    cams2 = _cameras(scale=2.0)
    images2, truth2, _ = _render(cams2, scale=2.0)
    assert torch.equal(images2.float(), images)  # the scaled scene looks the same
    a = StereoDepth().estimate(images[:3], cams[:3])
    b = StereoDepth().estimate(images2.float()[:3], cams2[:3])
    assert torch.equal(a.valid, b.valid)
    torch.testing.assert_close(b.depth, 2 * a.depth, rtol=1e-6, atol=0)
    near, far = auto_depth_range(images[0], images[1:], cams[0], cams[1:])
    near2, far2 = auto_depth_range(images[0], images[1:], cams2[0], cams2[1:])
    assert near2 == pytest.approx(2 * near, rel=1e-9) and far2 == pytest.approx(2 * far, rel=1e-9)


def test_untextured_images_warn_and_give_no_depth():
    cams = _cameras()
    flat = torch.full((5, 3, H, W), 0.5)
    with pytest.warns(StereoDepthWarning, match="confident pixels"):
        pred = StereoDepth(StereoDepthConfig(num_depths=8, coarse_depths=8)).estimate(flat, cams)
    assert not pred.valid.any() and not pred.depth.any()


# ---------------------------------------------------------------------------------------------- helpers
def test_neighbours_are_the_nearest_with_a_baseline():
    cams = _cameras()
    assert select_neighbours(cams.centers, 4) == [[3, 4, 1, 2], [0, 3, 4, 2], [0, 3, 4, 1], [0, 1, 2, 4], [0, 1, 2, 3]]
    assert select_neighbours(cams.centers, 2)[0] == [3, 4]
    # a camera 1 mm from the first carries no depth: skipped by both (it is 0.2% of the 0.5 farthest distance)
    centres = torch.cat([cams.centers, torch.tensor([[0.001, 0.0, 0.0]], dtype=torch.float64)])
    nb = select_neighbours(centres, 4)
    assert nb[0] == [3, 4, 1, 2] and nb[5] == [3, 4, 1, 2]
    assert select_neighbours(centres, 4, min_baseline_ratio=0.0)[0] == [5, 3, 4, 1]


def test_count_consistent_views(scene):
    cams, _, truth, _ = scene
    depth = truth.float()
    agree = count_consistent_views(depth[0], cams[0], cams[1:], depth[1:])
    assert agree.dtype == torch.int64 and int(agree.max()) == 4
    assert float((agree >= 1).double().mean()) >= 0.97  # true depths agree wherever a source sees the point
    wrong = count_consistent_views(depth[0] * 0.9, cams[0], cams[1:], depth[1:])
    assert float((wrong >= 1).double().mean()) <= 0.05
    assert int(count_consistent_views(torch.zeros(H, W), cams[0], cams[1:], depth[1:]).max()) == 0


@pytest.mark.parametrize(
    ("size", "window", "scale", "expected"),
    [
        ((240, 320), 5, True, 5),
        ((48, 64), 5, True, 3),
        ((480, 640), 5, True, 11),
        ((720, 405), 5, True, 9),
        ((48, 64), 7, False, 7),
        ((2000, 3000), 3, True, 25),
    ],
)
def test_effective_window(size, window, scale, expected):
    assert effective_window(StereoDepthConfig(window=window, scale_window=scale), *size) == expected


# ---------------------------------------------------------------------------------------------- errors
def test_input_errors(scene):
    cams, images, _, _ = scene
    est = StereoDepth()
    with pytest.raises(InputError, match="at least 2 images"):
        est.estimate(images[:1], cams[:1])
    with pytest.raises(InputError, match="needs the cameras"):
        est.estimate(images, None)
    with pytest.raises(InputError, match="do not fit"):
        est.estimate(images[:3], cams[:4])
    same = Cameras(cams.c2w[:1].expand(3, 4, 4).clone(), cams.K[:3], H, W)
    with pytest.raises(InputError, match="share one centre"):
        est.estimate(images[:3], same)
    with pytest.raises(InputError, match="no baseline"):
        plane_sweep_depth(images[0], images[1:3], cams[0], same[1:])
    with pytest.raises(InputError, match="reference camera must be one view"):
        plane_sweep_depth(images[0], images[1:3], cams[:2], cams[1:3])
    with pytest.raises(InputError, match="source camera"):
        plane_sweep_depth(images[0], images[1:3], cams[0], cams[1:4])
    with pytest.raises(InputError, match="source images"):
        plane_sweep_depth(images[0], images[1:3, :, :10], cams[0], cams[1:3])
    with pytest.raises(ValueError, match="images must be float"):
        est.estimate(images[0], cams)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"num_depths": 3}, "num_depths"),
        ({"num_depths": 8.0}, "num_depths"),
        ({"window": 4}, "odd"),
        ({"window": 1}, "window"),
        ({"neighbours": 0}, "neighbours"),
        ({"min_views": 0}, "min_views"),
        ({"min_views": 5}, "cannot exceed neighbours"),
        ({"consistent_views": 5}, "cannot exceed neighbours"),
        ({"consistent_views": -1}, "consistent_views"),
        ({"depth_range": (5.0, 1.0)}, "0 < near < far"),
        ({"depth_range": (0.0, 1.0)}, "0 < near < far"),
        ({"depth_range": (1.0, math.inf)}, "0 < near < far"),
        ({"depth_range": (1.0,)}, "two numbers"),
        ({"search_range": (1.0, 1.0)}, "search_range"),
        ({"max_cost": 0.0}, "max_cost"),
        ({"max_ratio": 1.5}, "max_ratio"),
        ({"min_texture": -0.1}, "min_texture"),
        ({"min_baseline_ratio": 1.0}, "min_baseline_ratio"),
        ({"range_quantile": 0.5}, "range_quantile"),
        ({"range_confidence": 1.0}, "range_confidence"),
        ({"range_margin": math.nan}, "range_margin"),
        ({"consistency": 0.0}, "consistency"),
        ({"coarse_size": 4}, "coarse_size"),
        ({"chunk_budget": 0}, "chunk_budget"),
    ],
)
def test_bad_config(fields, match):
    with pytest.raises(InputError, match=match):
        StereoDepthConfig(**fields)


def test_config_accepts_a_list_range():
    assert StereoDepthConfig(depth_range=[1, 4]).depth_range == (1.0, 4.0)


# ---------------------------------------------------------------------------------------------- registry
def test_registry():
    assert "stereo" in available_estimators()
    est = get_estimator("stereo")
    assert isinstance(est, StereoDepth) and est.name == "stereo"
    assert get_estimator("stereo", num_depths=32, neighbours=2).config.num_depths == 32
    with pytest.raises(InputError, match="has no option"):
        get_estimator("stereo", planes=3)


# ---------------------------------------------------------------------------------------------- real scene
def test_fox_scene_gives_a_plausible_depth(shared_data):
    """instant-ngp's fox: a mounted fox head on a wall, frames 3, 5, 6, 7 as sources (no ground truth)."""
    from worldwarp.eval.datasets import DatasetConfig, load_transforms_scene

    folder = shared_data / "scenes" / "ingp_fox"
    if not (folder / "transforms.json").is_file():
        pytest.skip(f"{folder} not found")
    scene = load_transforms_scene(folder, DatasetConfig("transforms", size=(180, 101)))
    nb = select_neighbours(scene.cameras.centers, 4)[0]
    assert nb == [3, 5, 6, 7]
    images = scene.frames([0, *nb])
    depth, valid, _ = plane_sweep_depth(images[0], images[1:], scene.cameras[0], scene.cameras[nb])
    assert float(valid.double().mean()) >= 0.5  # measured 0.66
    q05, q50, q95 = torch.quantile(depth[valid], torch.tensor([0.05, 0.5, 0.95])).tolist()
    assert 3.5 <= q05 and 5.0 <= q50 <= 6.0 and q95 <= 9.0  # measured 4.22, 5.52, 7.84 (scene units)


# ---------------------------------------------------------------------------------------------- evaluation
def _eval_scene(images: torch.Tensor, cams: Cameras, depth: torch.Tensor | None):
    from worldwarp.eval.datasets import EvalScene

    return EvalScene(
        name="synthetic",
        dataset="transforms",
        cameras=cams,
        frame_indices=(4,),
        load_frame=lambda i: images[i],
        load_depth=None if depth is None else (lambda i: depth[i].float()),
    )


def test_evaluation_start_depth_modes(scene):
    from worldwarp.eval.benchmark import BenchmarkConfig, build_method, run_benchmark
    from worldwarp.eval.datasets import DatasetConfig, with_start_depth

    cams, images, truth, labels = scene
    bare = _eval_scene(images, cams, None)
    given = _eval_scene(images, cams, truth)
    cfg = DatasetConfig(name="transforms", start_depth="stereo", stereo_sources=4)
    est = with_start_depth(bare, cfg)
    assert est.meta["start_depth"] == "stereo (frames 0-4)"
    d = est.start_depth
    assert d is est.start_depth  # estimated once
    valid = d > 0
    assert float(valid.double().mean()) >= 0.7
    assert _accuracy(d, valid, truth[0], 0.03) >= 0.9
    with pytest.raises(InputError, match="start frame only"):
        est.load_depth(1)
    # auto keeps a dataset's own depth, uses stereo only without it; given never estimates
    auto = DatasetConfig(name="transforms", start_depth="auto")
    assert with_start_depth(given, auto).meta["start_depth"] == "given"
    assert torch.equal(with_start_depth(given, auto).start_depth, truth[0].float())
    assert with_start_depth(bare, auto).meta["start_depth"] == "stereo (frames 0-4)"
    assert with_start_depth(bare, DatasetConfig(name="transforms")).start_depth is None
    assert with_start_depth(bare, DatasetConfig(name="transforms")).meta["start_depth"] == "none"
    with pytest.raises(InputError, match="unknown start depth"):
        DatasetConfig(name="transforms", start_depth="mono")
    # the results record where the start depth came from, and the hole metrics now exist
    doc, _ = run_benchmark([est], build_method("copy-first"), "copy-first", BenchmarkConfig())
    rec = doc["scenes"][0]
    assert rec["start_depth"] == "stereo (frames 0-4)"
    assert "psnr_holes" in rec["metrics"]["4"]
