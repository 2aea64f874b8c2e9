"""Video write/read round trip, frame folders, debug compositions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from worldwarp.errors import InputError
from worldwarp.io.video import frame_strip, read_video, side_by_side, to_uint8_frames, write_frames, write_video


def _clip(n: int = 6, h: int = 32, w: int = 48) -> torch.Tensor:
    """Smooth moving gradients (compress well, so the round trip error is small)."""
    t = torch.arange(n, dtype=torch.float32)[:, None, None]
    y = torch.linspace(0, 1, h)[None, :, None]
    x = torch.linspace(0, 1, w)[None, None, :]
    r = (0.5 + 0.4 * torch.cos(3 * x + 2 * y + 0.2 * t)).expand(n, h, w)
    g = y.expand(n, h, w)
    b = (0.5 + 0.4 * torch.sin(6 * x + 0.3 * t)).expand(n, h, w)
    return torch.stack([r, g, b], dim=1) * 0.8 + 0.1


def test_round_trip(tmp_path):
    clip = _clip()
    path = write_video(tmp_path / "v.mp4", clip, fps=16)
    assert path == tmp_path / "v.mp4" and [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    back = read_video(path)
    assert back.shape == clip.shape and back.dtype == torch.float32
    err = (back - clip).abs()
    assert float(err.mean()) < 0.02 and float(err.max()) < 0.25
    assert read_video(path, max_frames=2).shape[0] == 2


def test_odd_sizes_pad_or_crop(tmp_path):
    clip = _clip(3, 15, 21)
    write_video(tmp_path / "pad.mp4", clip)
    write_video(tmp_path / "crop.mp4", clip, even="crop")
    padded, cropped = read_video(tmp_path / "pad.mp4"), read_video(tmp_path / "crop.mp4")
    assert padded.shape == (3, 3, 16, 22) and cropped.shape == (3, 3, 14, 20)
    assert float((padded[:, :, :15, :21] - clip).abs().mean()) < 0.03


def test_uint8_hwc_input(tmp_path):
    frames = (np.random.default_rng(0).random((2, 8, 8, 3)) * 255).astype(np.uint8)
    frames[:] = 128
    write_video(tmp_path / "u.mp4", frames)
    back = read_video(tmp_path / "u.mp4")
    assert back.shape == (2, 3, 8, 8)
    assert float((back - 128 / 255).abs().max()) < 3 / 255


def test_write_failure_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="expected"):
        write_video(tmp_path / "bad.mp4", torch.rand(2, 4, 8, 8))
    assert list(tmp_path.iterdir()) == []


def test_read_errors(tmp_path):
    with pytest.raises(InputError, match="video not found"):
        read_video(tmp_path / "none.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video at all" * 10)
    with pytest.raises(InputError, match=r"junk\.mp4: cannot decode video"):
        read_video(tmp_path / "junk.mp4")


def test_write_frames(tmp_path):
    clip = _clip(3, 4, 6)
    paths = write_frames(tmp_path / "frames", clip, start_index=7)
    assert [p.name for p in paths] == ["00007.png", "00008.png", "00009.png"]
    with Image.open(paths[1]) as im:
        np.testing.assert_array_equal(np.asarray(im), to_uint8_frames(clip)[1])


def test_to_uint8_frames_rounding():
    x = torch.tensor([0.0, 0.5 / 255, 1.5 / 255, 1.0, 2.0, -1.0]).reshape(1, 1, 1, 6).expand(1, 3, 1, 6)
    out = to_uint8_frames(x)
    assert out.shape == (1, 1, 6, 3)
    assert out[0, 0, :, 0].tolist() == [0, 0, 2, 255, 255, 0]  # round half to even at 0.5


def test_side_by_side_layout():
    a = torch.rand(2, 3, 8, 10)
    mask = torch.zeros(2, 8, 5, dtype=torch.bool)
    mask[:, :4] = True
    c = torch.rand(2, 3, 4, 6)  # half height: resized to 8x12
    out = side_by_side(a, mask, c, gap=2)
    assert out.shape == (2, 3, 8, 10 + 2 + 5 + 2 + 12)
    torch.testing.assert_close(out[:, :, :, :10], a)
    assert (out[:, :, :, 10:12] == 0).all()
    torch.testing.assert_close(out[:, :, :, 12:17], mask.float()[:, None].expand(-1, 3, -1, -1))
    assert out[:, :, :, 19:].shape[-1] == 12
    wide = torch.rand(2, 3, 24, 40)
    labelled = side_by_side(wide, mask, labels=["prior", "mask"], label_height=14)
    assert labelled.shape == (2, 3, 14 + 24, 40 + 4 + 15)  # the mask is resized to height 24 (15 wide)
    torch.testing.assert_close(labelled[:, :, 14:, :40], wide)
    band = labelled[0, :, :14, :40]
    assert float(band.max()) > 0.9 and float(band.min()) < 0.2  # white text on a dark band
    assert torch.equal(labelled[0, :, :14], labelled[1, :, :14])  # same caption on every frame
    with pytest.raises(ValueError, match="frame counts"):
        side_by_side(a, torch.rand(3, 3, 8, 10))
    with pytest.raises(ValueError, match="labels"):
        side_by_side(a, labels=["x", "y"])


def test_frame_strip():
    frames = torch.arange(9, dtype=torch.float32).reshape(9, 1, 1, 1).expand(9, 3, 2, 3) / 10
    strip = frame_strip(frames, 3, gap=1)
    assert strip.shape == (3, 2, 3 * 3 + 2)
    assert strip[0, 0, ::4].tolist() == pytest.approx([0.0, 0.4, 0.8])
    assert frame_strip(frames, 1).shape == (3, 2, 3)
