"""Procedural worlds: exact geometry, z-depth, multi-view consistency, determinism, paths, CLI, dataset."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from worldwarp.cameras import Cameras, intrinsics_from_fov, look_at
from worldwarp.errors import InputError
from worldwarp.scenes import (
    PathConfig,
    RenderConfig,
    Scene,
    generate_scene,
    make_clip,
    path_clearance,
    preset_path,
    random_path,
    render,
)
from worldwarp.scenes.geometry import Box, Cylinder, Plane, Sphere, intersect, pack_geometry, signed_distance
from worldwarp.scenes.scene import Material
from worldwarp.scenes.textures import Texture, evaluate_texture, load_photo, value_noise

GREY = [Material(Texture("solid", (0.5, 0.5, 0.5)))]


def _yaw_camera(yaw: float, size: tuple[int, int] = (33, 33), fov: float = 60.0) -> Cameras:
    eye = torch.zeros(3, dtype=torch.float64)
    target = torch.tensor([math.sin(yaw), 0.0, math.cos(yaw)], dtype=torch.float64)
    h, w = size
    return Cameras(look_at(eye, target), intrinsics_from_fov(h, w, fov_x_deg=fov), h, w)


# ---------------------------------------------------------------------------------------------- geometry
def test_intersections_are_analytic() -> None:
    boxes = [Box((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 0, yaw=math.pi / 4)]
    g = pack_geometry(boxes, [], [], [], dtype=torch.float64)
    hit = intersect(g, torch.tensor([[-5.0, 0.0, 0.0]], dtype=torch.float64), torch.tensor([[2.0, 0.0, 0.0]]).double())
    # a 45-degree box presents its edge: the ray meets it at x = -sqrt(2), t = (5 - sqrt 2) / |d| with |d| = 2
    assert float(hit.t[0]) == pytest.approx((5 - math.sqrt(2)) / 2, abs=1e-12)
    n = hit.normal[0]
    assert float(n[1]) == 0 and float(n.norm()) == pytest.approx(1.0) and float(n[0]) < 0

    g = pack_geometry(
        [], [Sphere((0.0, 0.0, 4.0), 1.0, 0)], [Cylinder((0.0, 0.0, 0.0), 1.0, 2.0, 0)], [], dtype=torch.float64
    )
    o = torch.tensor([[0.0, 0.0, 10.0], [-5.0, 0.5, 0.0], [0.3, -6.0, 0.0], [0.0, 0.0, 4.0]], dtype=torch.float64)
    d = torch.tensor([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    hit = intersect(g, o, d)
    # sphere from outside (t=5), cylinder side (t=4), cylinder cap at y=-2 (t=4), sphere from inside (t=1)
    assert hit.t.tolist() == pytest.approx([5.0, 4.0, 4.0, 1.0], abs=1e-12)
    assert hit.prim.tolist() == [0, 1, 1, 0]
    assert hit.normal[2].tolist() == pytest.approx([0.0, -1.0, 0.0])


def test_signed_distance_exact() -> None:
    g = pack_geometry(
        [Box((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 0, yaw=0.3)],
        [Sphere((10.0, 0.0, 0.0), 2.0, 0)],
        [Cylinder((-10.0, 0.0, 0.0), 0.5, 1.0, 0)],
        [Plane((0.0, -1.0, 0.0), -5.0, 0)],  # the ground y = 5, free side y < 5 (up is -y)
        dtype=torch.float64,
    )
    p = [[0.0, 0.0, 0.0], [10.0, 0.0, 3.5], [-10.0, 0.0, 1.5], [-10.0, -1.2, 0.0], [0.0, 4.5, 30.0]]
    d = signed_distance(g, torch.tensor(p, dtype=torch.float64))
    assert d.tolist() == pytest.approx([-1.0, 1.5, 1.0, 0.2, 0.5], abs=1e-12)


def test_depth_is_z_depth_against_a_plane() -> None:
    # the plane z = 5 (free side towards the camera), seen straight on and turned by 25 degrees
    scene = Scene("custom", 0, GREY, planes=[Plane((0.0, 0.0, -1.0), -5.0, 0)], ambient=1.0)
    cfg = RenderConfig(supersample=1, dtype=torch.float64)
    straight = render(scene, _yaw_camera(0.0), cfg).depth[0]
    assert torch.allclose(straight, torch.full_like(straight, 5.0), atol=1e-12)
    cams = _yaw_camera(math.radians(25))
    depth = render(scene, cams, cfg).depth[0]
    uv = cams.pixel_grid()
    K, R = cams.K[0], cams.c2w[0, :3, :3]
    d_cam = torch.stack([(uv[..., 0] - K[0, 2]) / K[0, 0], (uv[..., 1] - K[1, 2]) / K[1, 1], torch.ones(33, 33)], -1)
    expected = 5.0 / (d_cam @ R[2])  # z-depth: distance along the optical axis of the hit
    assert torch.allclose(depth, expected, rtol=1e-10)
    ray_length = expected * d_cam.norm(dim=-1)
    assert (ray_length - depth).abs().max() > 0.5  # ... which is not the ray length
    # unprojecting the depth lands exactly on the plane
    assert torch.allclose(cams.unproject(depth[None])[..., 2], torch.full((1, 33, 33), 5.0, dtype=torch.float64))


def test_culling_matches_reference_renderer() -> None:
    scene = generate_scene(0, "room")
    cams = random_path(scene, 2, 24, 32, generator=torch.Generator().manual_seed(1))
    fast = render(scene, cams, RenderConfig(supersample=2, cull=True))
    ref = render(scene, cams, RenderConfig(supersample=2, cull=False))
    assert torch.equal(fast.prim, ref.prim)
    assert torch.equal(fast.depth, ref.depth)
    assert torch.allclose(fast.rgb, ref.rgb, atol=1e-6)


# ---------------------------------------------------------------------------------------------- textures
def test_textures_exact_values_and_filtering() -> None:
    tex = Texture("checker", (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), scale=0.5)
    uv = torch.tensor([[0.1, 0.1], [0.6, 0.1], [0.6, 0.6], [-0.1, 0.1]])
    rgb = evaluate_texture(tex, uv, torch.zeros(4))
    assert rgb.tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    far = evaluate_texture(tex, uv, torch.full((4,), 10.0))  # a footprint far above the period: the mean
    assert torch.allclose(far, torch.tensor([0.5, 0.0, 0.5]).expand(4, 3))
    n = value_noise(torch.rand(1000, 2, generator=torch.Generator().manual_seed(0)) * 50, seed=3)
    assert 0 <= float(n.min()) and float(n.max()) <= 1 and float(n.std()) > 0.1
    lattice = value_noise(torch.tensor([[3.0, 4.0], [3.0, 4.0]]), seed=3)
    assert lattice[0] == lattice[1]
    with pytest.raises(InputError, match="unknown texture kind"):
        Texture("marble")  # type: ignore[arg-type]


def test_photographs_ship_with_scikit_image() -> None:
    img = load_photo("chelsea")
    assert img.shape[0] == 3 and img.shape[1:] == (300, 451)
    assert load_photo("brick").shape[0] == 1
    tex = Texture("image", scale=2.0, image="astronaut")
    centre = evaluate_texture(tex, torch.zeros(1, 2), torch.zeros(1))
    ref = load_photo("astronaut")[:, 255:257, 255:257].mean((1, 2))
    assert torch.allclose(centre[0], ref, atol=1e-6)


# ---------------------------------------------------------------------------------------------- worlds
def test_generator_is_deterministic_and_varied() -> None:
    a, b, c = generate_scene(5), generate_scene(5), generate_scene(6)
    assert a == b
    assert a != c
    rooms = [generate_scene(s, "room") for s in range(4)]
    for r in rooms:
        assert r.sky is not None and len(r.boxes) > 10
        photos = [m.texture.image for m in r.materials if m.texture.kind == "image"]
        assert photos, "every room hangs photographs"
    with pytest.raises(InputError, match="unknown scene kind"):
        generate_scene(0, "cave")  # type: ignore[arg-type]


def test_clip_is_deterministic_per_seed() -> None:
    a = make_clip(3, 3, 16, 24, render_config=RenderConfig(supersample=2))
    b = make_clip(3, 3, 16, 24, render_config=RenderConfig(supersample=2))
    assert torch.equal(a.frames, b.frames) and torch.equal(a.depths, b.depths)
    assert torch.equal(a.cameras.c2w, b.cameras.c2w)
    c = make_clip(4, 3, 16, 24, render_config=RenderConfig(supersample=2))
    assert not torch.equal(a.frames, c.frames)
    assert (a.depths > 0).all(), "the sky dome gives every pixel a finite depth"


@pytest.mark.parametrize("seed", [0, 3, 7, 11])
def test_random_paths_keep_clearance(seed: int) -> None:
    scene = generate_scene(seed)
    cfg = PathConfig(clearance=0.35)
    cams = random_path(scene, 120, 16, 24, cfg, torch.Generator().manual_seed(seed))
    assert len(cams) == 120
    assert float(path_clearance(scene, cams, substeps=8).min()) >= 0.35
    assert bool(scene.region.contains(cams.centers).all())
    steps = (cams.centers[1:] - cams.centers[:-1]).norm(dim=-1)
    # constant speed along the curve (chords are a little shorter than arcs in tight turns)
    assert float(steps.max()) <= cfg.step * (1 + 1e-9) and float(steps.min()) > 0.8 * cfg.step
    assert float(steps.mean()) == pytest.approx(cfg.step, rel=0.02)
    # the camera turns: it keeps looking at new parts of the world
    yaw = torch.atan2(cams.forward[:, 0], cams.forward[:, 2])
    assert float((yaw.max() - yaw.min()).abs()) > 0.3


def test_preset_paths_are_placed_and_validated() -> None:
    scene = generate_scene(3, "open")
    cams = preset_path(scene, "orbit", 25, 16, 24, generator=torch.Generator().manual_seed(0))
    assert float(path_clearance(scene, cams).min()) >= PathConfig().clearance
    with pytest.raises(InputError, match="does not fit"):
        preset_path(scene, "dolly_in", 5, 16, 24, PathConfig(max_tries=3), speed=100.0)


def test_multiview_consistency() -> None:
    """Unproject frame i with its depth, reproject into frame j: colours agree where visible."""
    scene = generate_scene(1, "room")
    H, W = 48, 72
    cams = random_path(scene, 21, H, W, generator=torch.Generator().manual_seed(2)).to(dtype=torch.float32)
    idx = [0, 10, 20]
    out = render(scene, cams[idx], RenderConfig(supersample=3))
    pts = cams[[0]].unproject(out.depth[:1]).reshape(1, -1, 3)
    errors, baseline = [], []
    for j in (1, 2):
        uv, z = cams[[idx[j]]].project(pts)
        u, v = uv[0, :, 0].floor().long(), uv[0, :, 1].floor().long()
        inside = (u >= 0) & (u < W) & (v >= 0) & (v < H) & (z[0] > 0)
        u, v, zz = u[inside], v[inside], z[0][inside]
        visible = (out.depth[j, v, u] - zz).abs() < 0.01 * zz  # occlusion check
        src = out.rgb[0].reshape(3, -1)[:, inside][:, visible]
        dst = out.rgb[j][:, v[visible], u[visible]]
        assert visible.float().mean() > 0.5
        errors.append(float((src - dst).abs().mean(0).median()))
        baseline.append(float((out.rgb[0] - out.rgb[j]).abs().mean(0).median()))
    # measured: median error 0.0008 / 0.0007 (frames 10 / 20 apart) against 0.015 / 0.064 without warping
    assert max(errors) < 0.005
    assert all(e < b / 3 for e, b in zip(errors, baseline, strict=True))


# ---------------------------------------------------------------------------------------------- CLI, dataset
def test_cli_writes_a_valid_transforms_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from worldwarp.cli import main
    from worldwarp.scenes.export import read_clip

    out = tmp_path / "clip"
    args = ["scenes", "render", "--seed", "2", "--frames", "3", "--height", "16", "--width", "24", "--out", str(out)]
    assert main([*args, "--supersample", "1"]) == 0
    doc = json.loads((out / "transforms.json").read_text())
    assert (doc["w"], doc["h"]) == (24, 16)
    assert [f["file_path"] for f in doc["frames"]] == ["frames/00000.png", "frames/00001.png", "frames/00002.png"]
    ref = make_clip(2, 3, 16, 24, render_config=RenderConfig(supersample=1))
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    for i, fr in enumerate(doc["frames"]):
        gl = torch.tensor(fr["transform_matrix"], dtype=torch.float64)
        assert torch.allclose(gl @ flip, ref.cameras.c2w[i], atol=1e-12)  # OpenGL -> OpenCV matches
        depth = np.load(out / fr["depth_file_path"])
        assert depth.dtype == np.float32 and np.array_equal(depth, ref.depths[i].numpy())
    K = ref.cameras.K[0]
    assert [doc["fl_x"], doc["fl_y"], doc["cx"], doc["cy"]] == pytest.approx([K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
    back = read_clip(out)
    assert torch.allclose(back.cameras.c2w, ref.cameras.c2w, atol=1e-12)
    assert (back.frames - ref.frames).abs().max() <= 0.5 / 255 + 1e-6
    assert not list(out.rglob("*.tmp"))


def test_cli_bad_input_exits_2(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from worldwarp.cli import main

    assert main(["scenes", "render", "--frames", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--frames must be >= 1" in capsys.readouterr().err
    code = main(["scenes", "render", "--trajectory", "no_such_move", "--frames", "2", "--out", str(tmp_path / "y")])
    assert code == 2


def test_dataset_items() -> None:
    from worldwarp.scenes.dataset import ClipDatasetConfig, ProceduralClipDataset, collate_clips

    ds = ProceduralClipDataset(ClipDatasetConfig(length=4, clip_frames=3, path_frames=8, height=16, width=24))
    a, b = ds[1], ds[1]
    assert a["frames"].shape == (3, 3, 16, 24) and a["depths"].shape == (3, 16, 24) and len(a["cameras"]) == 3
    assert torch.equal(a["frames"], b["frames"]) and a["scene_seed"] == b["scene_seed"]
    assert 0 <= a["source"] < 3
    batch = collate_clips([ds[0], ds[1]])
    assert batch["frames"].shape == (2, 3, 3, 16, 24) and batch["scene_seed"].shape == (2,)
    with pytest.raises(IndexError):
        ds[4]


def test_suites_are_fixed_and_disjoint() -> None:
    from worldwarp.scenes.suites import SUITES, suite

    dev, test = suite("dev"), suite("test")
    assert len(dev) == 8 and len(test) == 8 and all(e.frames == 200 for e in dev + test)
    assert not {e.seed for e in dev} & {e.seed for e in test}
    assert {e.kind for e in dev} == {"room", "open"} == {e.kind for e in test}
    assert set(SUITES) == {"dev", "test"}
    with pytest.raises(InputError, match="unknown scene suite"):
        suite("train")


@pytest.mark.slow
def test_suite_scene_renders_and_caches(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from worldwarp.scenes.suites import render_suite_scene

    a = render_suite_scene("dev", 6, tmp_path, 16, 24, RenderConfig(supersample=1))
    b = render_suite_scene("dev", 6, tmp_path, 16, 24)
    assert len(a) == 200 and torch.allclose(a.cameras.c2w, b.cameras.c2w, atol=1e-12)
    assert (a.frames - b.frames).abs().max() <= 0.5 / 255 + 1e-6
