"""Depth files: formats, units, validation, size checks, nearest resizing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from worldwarp.errors import InputError
from worldwarp.io.depth import (
    DepthWarning,
    check_depth_matches,
    load_depth,
    prepare_depth,
    resize_depth,
    save_depth,
)
from worldwarp.io.images import prepare_image


def test_npy_float_and_scale(tmp_path):
    d = np.array([[1.5, 2.0], [0.0, 3.25]], np.float32)
    np.save(tmp_path / "d.npy", d)
    out = load_depth(tmp_path / "d.npy")
    assert out.dtype == torch.float32 and out.shape == (2, 2)
    torch.testing.assert_close(out, torch.from_numpy(d))
    torch.testing.assert_close(load_depth(tmp_path / "d.npy", scale=2.0), torch.from_numpy(d) * 2)
    np.save(tmp_path / "d3.npy", d[None])  # (1, H, W) is squeezed
    torch.testing.assert_close(load_depth(tmp_path / "d3.npy"), torch.from_numpy(d))


def test_npy_uint16_millimetres(tmp_path):
    np.save(tmp_path / "mm.npy", np.array([[1000, 2500], [0, 65535]], np.uint16))
    torch.testing.assert_close(load_depth(tmp_path / "mm.npy"), torch.tensor([[1.0, 2.5], [0.0, 65.535]]))
    torch.testing.assert_close(load_depth(tmp_path / "mm.npy", scale=1e-4), torch.tensor([[0.1, 0.25], [0.0, 6.5535]]))


def test_npz_key(tmp_path):
    np.savez(tmp_path / "a.npz", depth=np.full((2, 3), 4.0, np.float32), other=np.zeros(1))
    torch.testing.assert_close(load_depth(tmp_path / "a.npz"), torch.full((2, 3), 4.0))
    np.savez(tmp_path / "b.npz", x=np.zeros((2, 2)), y=np.zeros((2, 2)))
    with pytest.raises(InputError, match="name the depth array 'depth'"):
        load_depth(tmp_path / "b.npz")


def test_16bit_png_round_trip(tmp_path):
    mm = np.array([[0, 1, 1234], [40000, 65535, 7]], np.uint16)
    Image.fromarray(mm).save(tmp_path / "d.png")
    out = load_depth(tmp_path / "d.png")
    torch.testing.assert_close(out.double(), torch.from_numpy(mm / 1000.0), atol=1e-6, rtol=1e-7)
    torch.testing.assert_close(load_depth(tmp_path / "d.png", scale=1.0), torch.from_numpy(mm.astype(np.float32)))
    # save_depth writes millimetres; values round to the nearest millimetre
    d = torch.tensor([[0.0, 1.0004], [2.5, 65.0]])
    save_depth(tmp_path / "s.png", d)
    with Image.open(tmp_path / "s.png") as im:
        assert im.mode.startswith("I")
        np.testing.assert_array_equal(np.asarray(im), [[0, 1000], [2500, 65000]])
    torch.testing.assert_close(load_depth(tmp_path / "s.png"), torch.tensor([[0.0, 1.0], [2.5, 65.0]]))


def test_8bit_png_refused(tmp_path):
    Image.fromarray(np.full((2, 2), 9, np.uint8)).save(tmp_path / "d8.png")
    with pytest.raises(InputError, match=r"d8\.png: depth image has mode L \(8-bit\)"):
        load_depth(tmp_path / "d8.png")


def test_pfm_round_trip_and_orientation(tmp_path):
    d = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    save_depth(tmp_path / "d.pfm", d)
    raw = (tmp_path / "d.pfm").read_bytes()
    assert raw.startswith(b"Pf\n3 2\n-1.0\n")
    # PFM stores rows bottom-to-top: the first stored float is the bottom-left pixel
    assert np.frombuffer(raw[len(b"Pf\n3 2\n-1.0\n") :][:4], "<f4")[0] == 4.0
    torch.testing.assert_close(load_depth(tmp_path / "d.pfm"), d)
    # big-endian colour PFM: first channel is used
    rgb = np.stack([np.array([[7.0, 8.0]]), np.zeros((1, 2)), np.zeros((1, 2))], -1).astype(">f4")
    (tmp_path / "c.pfm").write_bytes(b"PF\n2 1\n1.0\n" + rgb.tobytes())
    torch.testing.assert_close(load_depth(tmp_path / "c.pfm"), torch.tensor([[7.0, 8.0]]))
    (tmp_path / "t.pfm").write_bytes(b"Pf\n3 2\n-1.0\n" + b"\x00" * 8)
    with pytest.raises(InputError, match=r"t\.pfm: PFM file is truncated"):
        load_depth(tmp_path / "t.pfm")


def test_exr_with_openexr(tmp_path):
    OpenEXR = pytest.importorskip("OpenEXR")  # noqa: N806
    z = np.array([[1.0, 2.5], [0.0, 10.0]], np.float32)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"R": np.zeros_like(z), "Z": z}) as f:
        f.write(str(tmp_path / "d.exr"))
    torch.testing.assert_close(load_depth(tmp_path / "d.exr"), torch.from_numpy(z))


def test_exr_without_reader_says_what_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_openexr(name, *args, **kwargs):
        if name == "OpenEXR":
            raise ImportError("no OpenEXR")
        return real_import(name, *args, **kwargs)

    (tmp_path / "d.exr").write_bytes(b"\x76\x2f\x31\x01" + b"\x00" * 64)
    monkeypatch.setattr(builtins, "__import__", no_openexr)
    with pytest.raises(InputError, match=r"d\.exr: reading EXR depth needs the OpenEXR package: pip install OpenEXR"):
        load_depth(tmp_path / "d.exr")


def test_exr_bad_magic(tmp_path):
    (tmp_path / "fake.exr").write_bytes(b"II*\x00" + b"\x00" * 64)  # a TIFF named .exr
    with pytest.raises(InputError, match="not an OpenEXR file"):
        load_depth(tmp_path / "fake.exr")


def test_invalid_values(tmp_path):
    d = np.ones((10, 10), np.float32)
    d[0, 0], d[0, 1], d[0, 2] = np.nan, np.inf, -2.0
    np.save(tmp_path / "d.npy", d)
    with pytest.warns(DepthWarning, match=r"d\.npy: 2 NaN/inf and 1 negative depth values \(3% of pixels\)"):
        out = load_depth(tmp_path / "d.npy")
    assert out[0, :3].tolist() == [0.0, 0.0, 0.0] and float(out[1:].min()) == 1.0
    np.save(tmp_path / "bad.npy", np.full((3, 3), np.nan, np.float32))
    with pytest.raises(InputError, match=r"bad\.npy: depth map has no valid pixels"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_depth(tmp_path / "bad.npy")
    np.save(tmp_path / "zero.npy", np.zeros((3, 3), np.float32))
    with pytest.raises(InputError, match="no valid pixels"):
        load_depth(tmp_path / "zero.npy")


def test_file_errors(tmp_path):
    with pytest.raises(InputError, match=r"depth file not found: .*x\.npy"):
        load_depth(tmp_path / "x.npy")
    (tmp_path / "e.npy").write_bytes(b"")
    with pytest.raises(InputError, match="is empty"):
        load_depth(tmp_path / "e.npy")
    (tmp_path / "c.npy").write_bytes(b"garbage bytes here")
    with pytest.raises(InputError, match=r"c\.npy: not a readable \.npy"):
        load_depth(tmp_path / "c.npy")
    (tmp_path / "d.xyz").write_bytes(b"1")
    with pytest.raises(InputError, match="unsupported depth format '.xyz'"):
        load_depth(tmp_path / "d.xyz")
    np.save(tmp_path / "3d.npy", np.ones((2, 3, 4), np.float32))
    with pytest.raises(InputError, match=r"depth must be a 2-D array \(H, W\), got shape \(2, 3, 4\)"):
        load_depth(tmp_path / "3d.npy")
    np.save(tmp_path / "ok.npy", np.ones((2, 2), np.float32))
    with pytest.raises(InputError, match="scale must be a positive number"):
        load_depth(tmp_path / "ok.npy", scale=-1.0)


def test_check_depth_matches():
    check_depth_matches(torch.ones(4, 6), torch.zeros(3, 4, 6))
    check_depth_matches(torch.ones(2, 4, 6), (4, 6))
    with pytest.raises(InputError, match=r"depth\.png is 5x4 \(WxH\) but photo\.jpg is 6x4"):
        check_depth_matches(torch.ones(4, 5), torch.zeros(3, 4, 6), depth_name="depth.png", image_name="photo.jpg")


def test_resize_depth_nearest():
    d = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    up = resize_depth(d, 4, 4)
    torch.testing.assert_close(up, torch.tensor([[1.0, 1, 2, 2], [1, 1, 2, 2], [3, 3, 0, 0], [3, 3, 0, 0]]))
    # no value is ever invented: every output value is an input value
    big = torch.rand(2, 7, 9)
    small = resize_depth(big, 3, 4)
    assert small.shape == (2, 3, 4) and torch.isin(small, big).all()


def test_prepare_depth_matches_prepare_image():
    # a depth map equal to a channel of the image must stay aligned with it (up to the resampling filter)
    h, w = 30, 50
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    blocks = (((i // 10) + (j // 10)) % 2).float()  # 10x10 checkerboard
    img = blocks.expand(3, h, w)
    out, prep = prepare_image(img, 12, 16)
    d = prepare_depth(blocks + 1.0, prep)
    assert d.shape == (12, 16)
    assert set(d.unique().tolist()) <= {1.0, 2.0}
    agree = ((out[0] > 0.5) == (d > 1.5)).float().mean()
    assert agree > 0.85
    torch.testing.assert_close(prepare_depth(blocks + 1.0, (12, 16)), d)
    with pytest.raises(InputError, match="source image"):
        prepare_depth(torch.ones(10, 10), prep)


def test_real_depth(shared_data):
    path = shared_data / "scenes" / "7scenes_redkitchen" / "depth" / "frame_00000.npy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DepthWarning)
        d = load_depth(path)
    assert d.shape == (480, 640)
    valid = d > 0
    assert 0.5 < float(valid.float().mean()) < 0.95
    assert 0.3 < float(d[valid].median()) < 5.0  # metres, indoor


def test_opencv_16bit_png(tmp_path):
    cv2 = pytest.importorskip("cv2")
    mm = np.array([[500, 0], [12000, 3]], np.uint16)
    assert cv2.imwrite(str(tmp_path / "cv.png"), mm)
    torch.testing.assert_close(load_depth(tmp_path / "cv.png"), torch.tensor([[0.5, 0.0], [12.0, 0.003]]))
