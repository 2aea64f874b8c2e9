"""Start-frame memory (worldwarp.start_memory): exact recall where the start view sees the target's surface, no recall
through a surface the warp shows in front or along rays no view saw empty, and its wiring into the presets."""

from __future__ import annotations

import pytest
import torch

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.settings import Overrides, configure
from worldwarp.start_memory import StartMemoryConfig, recall_start_frame
from worldwarp.warp import WarpResult

pytestmark = pytest.mark.usefixtures("one_thread")

H, W, F = 24, 32, 20.0


def _camera(tx: float = 0.0, tz: float = 0.0) -> Cameras:
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[0, 3], c2w[2, 3] = tx, tz
    K = torch.tensor([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]], dtype=torch.float64)
    return Cameras(c2w[None], K[None], H, W)


def _image() -> torch.Tensor:
    return torch.rand(3, H, W, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _warp(depth: float, valid: bool, n: int = 1) -> WarpResult:
    """A warp of constant depth, all valid or all holes, whose colour is -1 (so any recalled pixel shows)."""
    d = torch.full((n, H, W), depth if valid else 0.0, dtype=torch.float64)
    return WarpResult(
        rgb=torch.full((n, 3, H, W), -1.0, dtype=torch.float64),
        depth=d,
        alpha=torch.full((n, H, W), float(valid), dtype=torch.float64),
        mask=torch.full((n, H, W), valid),
    )


def test_the_start_view_itself_is_recalled_exactly() -> None:
    image, depth = _image(), torch.full((H, W), 2.0, dtype=torch.float64)
    out = recall_start_frame(_warp(2.0, valid=False), image, depth, _camera(), _camera())
    assert bool(out.mask.all())
    torch.testing.assert_close(out.rgb[0], image, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.depth[0], depth, rtol=0, atol=1e-12)
    assert bool((out.alpha == 1).all())


def test_the_same_surface_seen_from_the_side_takes_the_start_pixels() -> None:
    # a plane at z = 2 seen from 0.2 to the right: the target's column j shows the start's column j + 2 (F * 0.2 / 2)
    image, depth = _image(), torch.full((H, W), 2.0, dtype=torch.float64)
    cfg = StartMemoryConfig(free_space=False)
    out = recall_start_frame(_warp(2.0, valid=True), image, depth, _camera(), _camera(tx=0.2), config=cfg)
    assert bool(out.mask.all())
    torch.testing.assert_close(out.rgb[0, :, :, : W - 2], image[:, :, 2:], rtol=0, atol=1e-12)
    assert bool((out.rgb[0, :, :, W - 2 :] == -1).all())  # the start view does not see the last two columns


def test_a_surface_in_front_in_the_warp_keeps_its_pixels() -> None:
    image, depth = _image(), torch.full((H, W), 2.0, dtype=torch.float64)
    warp = _warp(1.0, valid=True)
    out = recall_start_frame(warp, image, depth, _camera(), _camera(tx=0.2), config=StartMemoryConfig(free_space=False))
    assert torch.equal(out.rgb, warp.rgb) and torch.equal(out.mask, warp.mask) and torch.equal(out.depth, warp.depth)


def test_holes_are_recalled_only_along_rays_seen_empty() -> None:
    # the target stands 2 behind the start camera: the first part of its rays lies behind the start view, which
    # cannot say whether that space is empty
    image, depth = _image(), torch.full((H, W), 4.0, dtype=torch.float64)
    target = _camera(tz=-2.0)
    alone = recall_start_frame(_warp(0.0, valid=False), image, depth, _camera(), target)
    assert not bool(alone.mask.any())
    # a history view at the target that saw the wall 6 away: every sample is seen empty by one of the two views
    views = (torch.full((1, H, W), 6.0, dtype=torch.float64), target)
    seen = recall_start_frame(_warp(0.0, valid=False), image, depth, _camera(), target, views)
    centre = seen.mask[0, H // 2 - 4 : H // 2 + 4, W // 2 - 5 : W // 2 + 5]
    assert bool(centre.all()) and not bool(seen.mask[0, 0, 0])  # the start view's wall fills the target's middle
    torch.testing.assert_close(seen.depth[0][seen.mask[0]], torch.full_like(seen.depth[0][seen.mask[0]], 6.0))
    # a history view that saw something 1.5 away, behind the start camera: the samples from there to the start
    # camera's plane lie behind it and outside the start view
    blocked = (torch.full((1, H, W), 1.5, dtype=torch.float64), target)
    assert not bool(recall_start_frame(_warp(0.0, valid=False), image, depth, _camera(), target, blocked).mask.any())


def test_bad_shapes_and_settings_are_input_errors() -> None:
    image, depth = _image(), torch.full((H, W), 2.0, dtype=torch.float64)
    with pytest.raises(InputError, match="do not match"):
        recall_start_frame(_warp(2.0, True), image[:, :-1], depth, _camera(), _camera())
    with pytest.raises(InputError, match="targets"):
        recall_start_frame(_warp(2.0, True, n=2), image, depth, _camera(), _camera())
    for bad in (dict(same_surface_tol=0.0), dict(visible_tol=1.5), dict(ray_samples=0), dict(ray_start=1.0)):
        with pytest.raises(InputError):
            StartMemoryConfig(**bad)
    with pytest.raises(InputError):
        StartMemoryConfig(free_tol=float("nan"))


def test_presets_and_overrides() -> None:
    assert configure("cpu").start_memory.enabled
    assert not configure("release").start_memory.enabled and not configure("paper").start_memory.enabled
    assert not configure("cpu", Overrides(start_memory=False)).start_memory.enabled
    assert configure("release", Overrides(start_memory=True)).start_memory.enabled


def test_a_camera_back_at_the_start_pose_shows_the_start_image() -> None:
    from test_pipeline import H as PH
    from test_pipeline import W as PW
    from test_pipeline import _inputs, _pipe
    from worldwarp.pipeline import quantize

    image, cams, _ = _inputs(12)
    depth = 2.0 + 0.5 * torch.linspace(0, 1, PW).expand(PH, PW)  # a smooth slanted wall
    c2w = cams.c2w.clone()
    c2w[-1] = c2w[0]  # the path comes back to where it started
    cams = Cameras(c2w, cams.K, PH, PW)
    start = quantize(image)
    on = _pipe(fill="push_pull")(image, cams, depth).frames[-1]
    off = _pipe(fill="push_pull", start_memory=StartMemoryConfig(enabled=False))(image, cams, depth).frames[-1]
    assert torch.equal(on, start)  # the start pixels themselves, not a render of renders
    assert float((off == start).float().mean()) < 0.05


def test_a_resumed_run_without_a_start_depth_recalls_the_same_frames(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import warnings

    from test_pipeline import _inputs, _pipe

    class Stop(Exception):
        pass

    def stop_at_chunk_1(record, state) -> None:  # type: ignore[no-untyped-def]
        if record.index == 1:  # before chunk 1 is saved: only chunk 0 is on disk
            raise Stop

    image, cams, _ = _inputs(11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the weight-free depth prior warns that it is a rough guess
        full = _pipe(fill="push_pull")(image, cams)
        with pytest.raises(Stop):
            _pipe(fill="push_pull")(image, cams, state_dir=tmp_path, callback=stop_at_chunk_1)
        resumed = _pipe(fill="push_pull")(image, cams, state_dir=tmp_path, resume=True)
        off = _pipe(fill="push_pull", start_memory=StartMemoryConfig(enabled=False))(image, cams)
    assert torch.equal(resumed.frames, full.frames)
    assert not torch.equal(off.frames, full.frames)  # the memory did recall something


def test_the_cli_switch_reaches_the_config() -> None:
    from worldwarp.runner import GenerationRequest, build_config

    assert build_config(GenerationRequest(out="x")).start_memory.enabled  # the cpu preset's default
    assert not build_config(GenerationRequest(out="x", start_memory="off")).start_memory.enabled
    assert build_config(GenerationRequest(out="x", preset="release", start_memory="on")).start_memory.enabled
