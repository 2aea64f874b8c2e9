"""Memory stays flat with length (a released run keeps only the next chunk's history; its frames are read back
from the saved chunks) and huge images are reduced before any float copy. Measured numbers:
docs/benchmarks/memory.md (benchmarks/bench_memory.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from test_pipeline import H, W, _inputs, _pipe


def test_released_run_gives_the_same_frames_with_a_bounded_state(tmp_path: Path) -> None:
    image, cams, depth = _inputs(20)
    full = _pipe()(image, cams, depth, state_dir=tmp_path / "a")
    sizes: list[int] = []
    pipe = _pipe()
    out = pipe(
        image, cams, depth, state_dir=tmp_path / "b", release=True,
        callback=lambda rec, state: sizes.append(int(state.frames.shape[0])),
    )  # fmt: skip
    assert out.first > 0 and out.frames.shape[0] == 20 - out.first
    assert max(sizes) <= pipe.config.chunk_frames  # never more than one chunk of frames in memory
    assert all(r.prior.numel() == 0 and r.gaussians is None for r in out.chunks[:-2])  # the last two are kept
    from worldwarp.pipeline import ChunkStore

    store = ChunkStore(tmp_path / "b", out.fingerprint)
    frames = [(image * 255).round().to(torch.uint8)[None]]
    frames += [f for _, f, _, _ in store.frames(len(out.chunks))]
    streamed = torch.cat(frames).float() / 255
    assert torch.equal(streamed, full.frames)
    assert torch.equal(out.frames, full.frames[out.first :])
    # resuming a released run from a saved chunk continues the same way
    for f in sorted((tmp_path / "b").glob("chunk_*.pt"))[3:]:
        f.unlink()
    again = _pipe()(image, cams, depth, state_dir=tmp_path / "b", resume=True, release=True)
    assert torch.equal(again.frames, out.frames) and again.first == out.first


def test_rollback_past_released_frames_is_an_input_error(tmp_path: Path) -> None:
    from worldwarp.errors import InputError

    image, cams, depth = _inputs(12)
    pipe = _pipe()
    state = pipe.start(image, cams, depth)
    for _ in range(3):
        pipe.step(state)
    state.release()
    assert state.base > 0 and state.frames.shape[0] == state.length - state.base
    with pytest.raises(InputError, match="released"):
        state.rollback(0)


def test_huge_image_is_reduced_before_float_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import worldwarp.io.images as images

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (2000, 3000, 3), dtype=np.uint8)
    path = tmp_path / "big.png"
    Image.fromarray(arr).save(path, compress_level=1)
    seen: list[tuple[int, int]] = []
    original = images._to_float_rgba

    def spy(img):  # type: ignore[no-untyped-def]
        seen.append((img.height, img.width))
        return original(img)

    monkeypatch.setattr(images, "_to_float_rgba", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", images.ImageResizedWarning)
        x, info = images.load_image(path, max_side=1000)
    assert seen == [(667, 1000)] and tuple(x.shape) == (3, 667, 1000)
    assert info.original_size == (2000, 3000) and info.resized
    ref = torch.from_numpy(arr[:1998].reshape(666, 3, 1000, 3, 3).mean(axis=(1, 3)) / 255).permute(2, 0, 1).float()
    assert (x[:, :666] - ref).abs().max() < 1 / 255  # a 3x3 box filter


def test_huge_16bit_png_is_reduced_too(tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    import cv2

    from worldwarp.io.images import load_image

    arr = np.full((300, 450, 3), 40000, dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), arr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, info = load_image(tmp_path / "deep.png", max_side=100)
    assert tuple(x.shape) == (3, 60, 90) and info.bit_depth == 16
    assert torch.allclose(x, torch.full_like(x, 40000 / 65535), atol=1e-6)


def test_cache_fit_with_progress_warns_nothing() -> None:
    from worldwarp.splat.cache import CacheConfig, fit_cache

    image, cams, depth = _inputs(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_cache(image[None], depth[None], cams[:1], CacheConfig(steps=2, max_points_per_frame=200), progress=True)
    assert H and W
