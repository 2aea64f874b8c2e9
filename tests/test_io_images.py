"""Image loading (EXIF, alpha, 16-bit, validation), resizing, cropping, prepare + intrinsics."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from worldwarp.cameras import Cameras, intrinsics_from_fov
from worldwarp.errors import InputError
from worldwarp.io.images import (
    ImageResizedWarning,
    center_crop_to_aspect,
    load_image,
    plan_prepare,
    prepare_image,
    resize_image,
    save_image,
)


def _pattern(h: int = 6, w: int = 10) -> np.ndarray:
    """(h, w, 3) uint8 with a unique colour per pixel."""
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([i * 20, j * 20, (i * w + j) % 251], axis=-1).astype(np.uint8)


def test_png_round_trip_exact(tmp_path):
    arr = _pattern()
    save_image(tmp_path / "a.png", torch.from_numpy(arr))
    img, info = load_image(tmp_path / "a.png")
    assert img.shape == (3, 6, 10) and img.dtype == torch.float32
    np.testing.assert_array_equal((img * 255).round().byte().permute(1, 2, 0).numpy(), arr)
    assert info.format == "PNG" and info.mode == "RGB" and info.exif_orientation == 1
    assert info.original_size == (6, 10) == info.size and not info.resized and not info.had_alpha


def test_float_save_load_round_trip(tmp_path):
    x = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    save_image(tmp_path / "f.png", x)
    y, _ = load_image(tmp_path / "f.png")
    assert (y - x).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (1, lambda a: a),
        (3, lambda a: a[::-1, ::-1]),
        (6, lambda a: np.rot90(a, -1)),  # camera rotated: display rotated 90 degrees clockwise
        (8, lambda a: np.rot90(a, 1)),
        (2, lambda a: a[:, ::-1]),
    ],
)
def test_exif_orientation_is_applied(tmp_path, orientation, expected):
    # blocks of 8x8 pixels so JPEG compression keeps each block's colour
    blocks = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[255, 255, 0], [0, 255, 255], [255, 0, 255]]])
    arr = np.kron(blocks, np.ones((8, 8, 1))).astype(np.uint8)  # (16, 24, 3)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.jpg"
    Image.fromarray(arr).save(path, format="JPEG", quality=95, exif=exif)
    img, info = load_image(path)
    want = np.ascontiguousarray(expected(arr))
    assert info.exif_orientation == orientation
    assert img.shape[1:] == want.shape[:2] == info.original_size
    got = (img * 255).permute(1, 2, 0).numpy()
    centres = got[4::8, 4::8]
    np.testing.assert_allclose(centres, want[4::8, 4::8], atol=12)


def test_rgba_composited_on_white_or_black(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = [255, 0, 0, 255]  # opaque red
    rgba[0, 1] = [0, 0, 255, 0]  # fully transparent
    rgba[1, 0] = [0, 0, 0, 128]  # half-transparent black
    rgba[1, 1] = [100, 50, 200, 255]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    white, info = load_image(tmp_path / "a.png")
    black, info_b = load_image(tmp_path / "a.png", background="black")
    assert info.had_alpha and info.background == "white" and info_b.background == "black"
    torch.testing.assert_close(white[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(white[:, 0, 1], torch.ones(3))
    torch.testing.assert_close(black[:, 0, 1], torch.zeros(3))
    torch.testing.assert_close(white[:, 1, 0], torch.full((3,), 1 - 128 / 255))
    torch.testing.assert_close(black[:, 1, 0], torch.zeros(3))
    torch.testing.assert_close(white[:, 1, 1], torch.tensor([100, 50, 200]) / 255.0)


def test_grayscale_and_palette_become_rgb(tmp_path):
    g = np.array([[0, 128], [255, 64]], np.uint8)
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    img, info = load_image(tmp_path / "g.png")
    assert info.mode == "L" and img.shape == (3, 2, 2)
    torch.testing.assert_close(img, torch.from_numpy(g).float().div(255).expand(3, -1, -1))
    p = Image.fromarray(_pattern(4, 4)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    p.save(tmp_path / "p.png")
    img_p, info_p = load_image(tmp_path / "p.png")
    want = np.asarray(p.convert("RGB"), np.float32) / 255
    assert info_p.mode == "P"
    np.testing.assert_allclose(img_p.permute(1, 2, 0).numpy(), want, atol=1e-6)


def test_16bit_gray_png_keeps_precision(tmp_path):
    a = np.array([[0, 1, 257], [32768, 65534, 65535]], np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    img, info = load_image(tmp_path / "g16.png")
    assert info.bit_depth == 16
    torch.testing.assert_close(img[0].double(), torch.from_numpy(a.astype(np.float64) / 65535), atol=1e-7, rtol=0)
    torch.testing.assert_close(img[1], img[0])


def test_16bit_rgb_png_keeps_precision(tmp_path):
    cv2 = pytest.importorskip("cv2")
    a = np.array([[[0, 1, 300], [65535, 40000, 12345]]], np.uint16)  # (1, 2, 3) RGB
    assert cv2.imwrite(str(tmp_path / "c16.png"), a[..., ::-1])
    img, info = load_image(tmp_path / "c16.png")
    assert info.bit_depth == 16
    torch.testing.assert_close(img.permute(1, 2, 0).double(), torch.from_numpy(a / 65535.0), atol=1e-7, rtol=0)


def test_float_tiff(tmp_path):
    a = np.array([[0.25, -1.0], [0.5, 2.0]], np.float32)
    Image.fromarray(a, "F").save(tmp_path / "f.tif")
    img, _ = load_image(tmp_path / "f.tif")
    torch.testing.assert_close(img[0], torch.tensor([[0.25, 0.0], [0.5, 1.0]]))


def test_missing_empty_corrupt_truncated(tmp_path):
    with pytest.raises(InputError, match=r"image not found: .*nope\.png"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.png: image file is empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("this is not an image")
    with pytest.raises(InputError, match=r"text\.jpg: not an image file"):
        load_image(tmp_path / "text.jpg")
    with pytest.raises(InputError, match="got a folder"):
        load_image(tmp_path)
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError, match=r"cut\.jpg: image file is truncated"):
        load_image(tmp_path / "cut.jpg")
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError, match=r"cut\.png: "):
        load_image(tmp_path / "cut.png")


def test_message_is_one_line(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(InputError) as e:
        load_image(tmp_path / "bad.png")
    assert "\n" not in str(e.value) and "bad.png" in str(e.value)


def test_max_side_resizes_with_warning(tmp_path):
    arr = np.zeros((40, 100, 3), np.uint8)
    arr[:, 50:] = 200
    Image.fromarray(arr).save(tmp_path / "big.png")
    with pytest.warns(ImageResizedWarning, match=r"big\.png: image is 100x40, resized to 50x20"):
        img, info = load_image(tmp_path / "big.png", max_side=50)
    assert img.shape == (3, 20, 50) and info.original_size == (40, 100) and info.resized
    # exact 2x box filter: left half 0, right half 200/255
    torch.testing.assert_close(img[:, :, :25], torch.zeros(3, 20, 25))
    torch.testing.assert_close(img[:, :, 25:], torch.full((3, 20, 25), 200 / 255))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small, _ = load_image(tmp_path / "big.png", max_side=100)
    assert small.shape == (3, 40, 100)


def test_large_jpeg_draft_decode(tmp_path):
    arr = np.kron(np.array([[[30, 60, 90], [200, 150, 100]]]), np.ones((400, 400, 1))).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "huge.jpg", quality=95)  # 800x400 after kron: (400, 800, 3)
    with pytest.warns(ImageResizedWarning, match="800x400, resized to 100x50"):
        img, info = load_image(tmp_path / "huge.jpg", max_side=100)
    assert img.shape == (3, 50, 100) and info.original_size == (400, 800)
    np.testing.assert_allclose(img[:, 25, 20].numpy() * 255, [30, 60, 90], atol=4)
    np.testing.assert_allclose(img[:, 25, 80].numpy() * 255, [200, 150, 100], atol=4)


def test_resize_modes():
    x = torch.arange(16.0).reshape(1, 4, 4) / 16
    torch.testing.assert_close(resize_image(x, 2, 2, mode="area")[0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]) / 16)
    torch.testing.assert_close(resize_image(x, 4, 4), x)
    up = resize_image(x, 8, 8, mode="nearest")
    torch.testing.assert_close(up[0, ::2, ::2], x[0])
    b = resize_image(torch.rand(2, 3, 9, 9), 5, 4, mode="bicubic")
    assert b.shape == (2, 3, 5, 4) and b.min() >= 0 and b.max() <= 1


def test_center_crop_to_aspect():
    x = torch.arange(6 * 10).reshape(1, 6, 10)
    crop, box = center_crop_to_aspect(x, 1.0)
    assert box == (0, 2, 6, 6)
    torch.testing.assert_close(crop, x[:, :, 2:8])
    crop, box = center_crop_to_aspect(x, 5.0)
    assert box == (2, 0, 2, 10)
    torch.testing.assert_close(crop, x[:, 2:4, :])


def test_prepare_image_and_cameras():
    # 60x100 image -> 32x48: scale max(32/60, 48/100) = 0.5333 -> 32x53, crop left 2
    prep = plan_prepare((60, 100), 32, 48)
    assert (prep.resized, prep.top, prep.left) == ((32, 53), 0, 2)
    img = torch.rand(3, 60, 100, generator=torch.Generator().manual_seed(1))
    out, prep2 = prepare_image(img, 32, 48)
    assert prep2 == prep and out.shape == (3, 32, 48)
    # a world point seen at pixel (u, v) in the source must be seen at the mapped pixel after preparation
    K = intrinsics_from_fov(60, 100, fov_x_deg=70).double()
    cams = Cameras(torch.eye(4, dtype=torch.float64), K, 60, 100)
    new = prep.apply_to_cameras(cams)
    assert (new.height, new.width) == (32, 48)
    pts = torch.tensor([[0.3, -0.2, 2.0], [-0.5, 0.4, 3.0]], dtype=torch.float64)
    uv0, _ = cams.project(pts)
    uv1, _ = new.project(pts)
    sx, sy = 53 / 100, 32 / 60
    torch.testing.assert_close(uv1[0, :, 0], uv0[0, :, 0] * sx - 2)
    torch.testing.assert_close(uv1[0, :, 1], uv0[0, :, 1] * sy)
    with pytest.raises(InputError, match="cameras are for"):
        prep.apply_to_cameras(cams.resize(30, 50))


def test_prepare_is_identity_at_same_size():
    img = torch.rand(3, 8, 12)
    out, prep = prepare_image(img, 8, 12)
    torch.testing.assert_close(out, img)
    assert (prep.top, prep.left, prep.resized) == (0, 0, (8, 12))


def test_save_image_jpeg_and_bad_shape(tmp_path):
    save_image(tmp_path / "x.jpg", torch.full((3, 8, 8), 0.5))
    img, info = load_image(tmp_path / "x.jpg")
    assert info.format == "JPEG" and abs(float(img.mean()) - 0.5) < 0.01
    with pytest.raises(ValueError, match="expected"):
        save_image(tmp_path / "y.png", torch.rand(4, 8, 8))
    assert not (tmp_path / "y.png").exists()


def test_real_photo(shared_data):
    path = shared_data / "scenes" / "7scenes_redkitchen" / "images" / "frame_00000.jpg"
    with pytest.warns(ImageResizedWarning):
        img, info = load_image(path, max_side=320)
    assert info.original_size == (480, 640) and img.shape == (3, 240, 320)
    assert 0.05 < float(img.mean()) < 0.95


def test_16bit_path_orientation_matches_pillow():
    from PIL import ImageOps

    from worldwarp.io.images import _rotate_like_exif

    a = (np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10).astype(np.uint8)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG", exif=exif)
        buf.seek(0)
        want = np.asarray(ImageOps.exif_transpose(Image.open(buf)))
        np.testing.assert_array_equal(_rotate_like_exif(a, orientation), want, err_msg=f"orientation {orientation}")


def test_decompression_bomb_is_input_error(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1600 px > 2 x 500: Pillow refuses to decode
    with pytest.raises(InputError, match=r"bomb\.png: image is too large to decode safely"):
        load_image(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # only above the warning limit: loads
    img, _ = load_image(tmp_path / "bomb.png")
    assert img.shape == (3, 40, 40)
