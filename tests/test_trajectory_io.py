import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.trajectory.formats.colmap import read_colmap, write_colmap
from worldwarp.trajectory.formats.nerf import read_transforms
from worldwarp.trajectory.formats.re10k import parse_re10k, write_re10k
from worldwarp.trajectory.io import FORMATS, detect_format, output_format, read_cameras, write_cameras
from worldwarp.trajectory.presets import trajectory_from_spec
from worldwarp.trajectory.rotations import rotvec_to_matrix

SAMPLE = Path(__file__).parent / "data" / "re10k_sample.txt"
NAMES = {"re10k": "c.txt", "transforms": "transforms.json", "colmap": "model.colmap", "npz": "c.npz",
         "cameras": "c.cameras.json"}  # fmt: skip


def _path_cams() -> Cameras:
    """A non-trivial path: rotated, translated start; zoom (per-frame K); off-centre principal point."""
    start = torch.eye(4, dtype=torch.float64)
    start[:3, :3] = rotvec_to_matrix(torch.tensor([0.4, 1.1, -0.3], dtype=torch.float64))
    start[:3, 3] = torch.tensor([3.0, -1.0, 7.5], dtype=torch.float64)
    K = torch.tensor([[61.5, 0.0, 33.25], [0.0, 59.0, 22.75], [0.0, 0.0, 1.0]], dtype=torch.float64)
    s = Cameras(start, K, 48, 64)
    return trajectory_from_spec("orbit+zoom_in,dolly_in+tilt_up", 12, start=s, scale=0.8)


def _close(a: Cameras, b: Cameras, tol: float = 1e-6) -> None:
    assert (a.height, a.width) == (b.height, b.width) and len(a) == len(b)
    assert (a.c2w - b.c2w).abs().max() < tol
    assert (a.K - b.K).abs().max() < tol


def _read(path: Path, fmt: str) -> Cameras:
    return read_cameras(path, height=48, width=64) if fmt in ("re10k",) else read_cameras(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    cams = _path_cams()
    out = tmp_path / NAMES[fmt]
    assert write_cameras(out, cams) == fmt
    assert detect_format(out) == fmt
    back = _read(out, fmt)
    _close(back, cams, 1e-9)
    # a second round trip changes nothing at all
    write_cameras(tmp_path / ("2" + NAMES[fmt]), back)
    _close(_read(tmp_path / ("2" + NAMES[fmt]), fmt), back, 1e-12)


@pytest.mark.parametrize("src", FORMATS)
def test_every_format_converts_into_every_other(tmp_path: Path, src: str) -> None:
    cams = _path_cams()
    write_cameras(tmp_path / NAMES[src], cams)
    a = _read(tmp_path / NAMES[src], src)
    for dst in FORMATS:
        out = tmp_path / "out" / NAMES[dst]
        write_cameras(out, a, dst)
        _close(_read(out, dst), cams, 1e-9)


def test_re10k_sample_reads_like_the_file() -> None:
    clip = parse_re10k(SAMPLE)
    cams = clip.cameras
    assert clip.url == "https://www.youtube.com/watch?v=ZK2ngrpD1oE"
    assert len(cams) == 30 and (cams.height, cams.width) == (360, 640)
    assert clip.timestamps[:2] == [90123367, 90156734]
    rows = [list(map(float, line.split())) for line in SAMPLE.read_text().splitlines()[1:]]
    raw = torch.tensor(rows, dtype=torch.float64)
    assert torch.allclose(cams.K[:, 0, 0], raw[:, 1] * 640) and torch.allclose(cams.K[:, 1, 1], raw[:, 2] * 360)
    assert torch.allclose(cams.K[:, 0, 2], torch.full((30,), 320.0, dtype=torch.float64))
    # w2c equals the file's numbers up to their 6 decimals (the rotations are re-orthonormalised on reading)
    assert (cams.w2c[:, :3, :].reshape(30, 12) - raw[:, 7:]).abs().max() < 2e-6


def test_re10k_to_transforms_to_re10k_exact(tmp_path: Path) -> None:
    clip = parse_re10k(SAMPLE)
    write_cameras(tmp_path / "transforms.json", clip.cameras)
    mid = read_cameras(tmp_path / "transforms.json")
    write_re10k(tmp_path / "back.txt", mid, url=clip.url, timestamps=clip.timestamps)
    again = parse_re10k(tmp_path / "back.txt")
    _close(again.cameras, clip.cameras, 1e-12)
    assert again.url == clip.url and again.timestamps == clip.timestamps


def test_transforms_conventions(tmp_path: Path) -> None:
    gl = torch.eye(4).tolist()  # OpenGL identity: camera looks down world -z, image up = world +y
    frames = [{"file_path": "a", "transform_matrix": gl}, {"file_path": "b", "transform_matrix": gl[:3], "fl_x": 70.0}]
    data = {"camera_angle_x": 1.0, "frames": frames}
    p = tmp_path / "transforms.json"
    p.write_text(json.dumps(data))
    cams = read_transforms(p, height=40, width=80)
    assert torch.allclose(cams.c2w[0], torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64)))
    f = 40 / np.tan(0.5)
    assert torch.allclose(cams.K[0], torch.tensor([[f, 0, 40], [0, f, 20], [0, 0, 1]], dtype=torch.float64))
    assert float(cams.K[1, 0, 0]) == 70.0 and float(cams.K[1, 1, 1]) == 70.0  # per-frame override, fy follows
    with pytest.raises(InputError, match="no image size"):
        read_transforms(p)


def test_colmap_models_and_distortion(tmp_path: Path) -> None:
    d = tmp_path / "sparse" / "0"
    d.mkdir(parents=True)
    (d / "cameras.txt").write_text("# c\n1 SIMPLE_RADIAL 64 48 60 32 24 0.01\n2 OPENCV 64 48 50 51 31 23 0 0 0 0\n")
    (d / "images.txt").write_text(
        "# i\n2 1 0 0 0 0 0 1 2 img10.png\n\n1 0.7071067811865476 0 0.7071067811865476 0 1 2 3 1 img2.png\n1 2 3\n"
    )
    with pytest.warns(UserWarning, match="distortion"):
        cams = read_cameras(tmp_path)  # finds sparse/0
    # natural name order: img2 before img10
    assert torch.allclose(cams.K[0], torch.tensor([[60.0, 0, 32], [0, 60, 24], [0, 0, 1]], dtype=torch.float64))
    assert torch.allclose(cams.K[1], torch.tensor([[50.0, 0, 31], [0, 51, 23], [0, 0, 1]], dtype=torch.float64))
    w2c = cams.w2c[0]
    assert torch.allclose(w2c[:3, 3], torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    assert torch.allclose(w2c[:3, 2], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-12)  # R(y, 90)
    (d / "cameras.txt").write_text("1 OPENCV_FISHEYE 64 48 50 51 31 23 0 0 0 0\n2 PINHOLE 64 48 1 1 1 1\n")
    with pytest.raises(InputError, match=r"cameras.txt:1: camera model OPENCV_FISHEYE is not supported"):
        read_cameras(d)


def test_colmap_agrees_with_pycolmap(tmp_path: Path) -> None:
    pycolmap = pytest.importorskip("pycolmap")
    cams = _path_cams()
    for binary in (False, True):
        folder = write_colmap(tmp_path / f"m{int(binary)}", cams, binary=binary)
        rec = pycolmap.Reconstruction(str(folder))
        ims = sorted(rec.images.values(), key=lambda im: im.name)
        assert len(ims) == len(cams)
        for k, im in enumerate(ims):
            m = torch.from_numpy(np.asarray(im.cam_from_world().matrix()))
            assert (m - cams.w2c[k, :3]).abs().max() < 1e-9
            K = torch.from_numpy(np.asarray(rec.cameras[im.camera_id].calibration_matrix()))
            assert (K - cams.K[k]).abs().max() < 1e-9
        # and a model written by pycolmap reads back the same
        out = tmp_path / f"py{int(binary)}"
        out.mkdir()
        (rec.write_binary if binary else rec.write_text)(str(out))
        _close(read_colmap(out), cams, 1e-9)


def test_npz_release_layout(tmp_path: Path) -> None:
    cams = _path_cams()
    p = tmp_path / "release.npz"
    np.savez(p, poses=cams.c2w.numpy()[None].astype(np.float32), intrinsics=cams.K.numpy()[None])
    back = read_cameras(p)  # image size from twice the principal point: 2 * (33.25, 22.75)
    assert (back.height, back.width) == (46, 66)
    assert (back.c2w - cams.c2w).abs().max() < 1e-5  # the release's float32
    assert (read_cameras(p, height=48, width=64).K - cams.K).abs().max() == 0
    write_cameras(tmp_path / "ours.npz", cams)
    with np.load(tmp_path / "ours.npz") as z:
        assert z["poses"].shape == (1, 12, 4, 4) and z["intrinsics"].shape == (1, 12, 3, 3)


def test_read_resizes_to_requested_size(tmp_path: Path) -> None:
    cams = _path_cams()
    write_cameras(tmp_path / "c.cameras.json", cams)
    big = read_cameras(tmp_path / "c.cameras.json", height=96, width=128)
    assert torch.allclose(big.K[:, :2], cams.K[:, :2] * 2)


def test_format_names(tmp_path: Path) -> None:
    assert output_format("a/t.txt") == "re10k"
    assert output_format("x/transforms.json") == "transforms"
    assert output_format("x/run.cameras.json") == "cameras"
    assert output_format("x/cameras.json") == "cameras"
    assert output_format("p.npz") == "npz"
    assert output_format("m.colmap") == "colmap" and output_format(tmp_path) == "colmap"
    with pytest.raises(InputError, match="cannot tell"):
        output_format("t.xyz")
    with pytest.raises(InputError, match="unknown camera file format"):
        write_cameras(tmp_path / "a.txt", _path_cams(), "ply")


# ----------------------------------------------------------------------------- bad files
GOOD_ROW = "1000 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0"


@pytest.mark.parametrize(
    ("body", "line", "msg"),
    [
        (f"http://u\n{GOOD_ROW}\n1000 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1", 3, "expected 19 numbers .*found 13"),
        (f"http://u\n{GOOD_ROW} 7\n", 2, "found 20"),
        (f"http://u\n{GOOD_ROW}\n{GOOD_ROW.replace('0.9', 'nan')}\n", 3, "NaN"),
        (f"http://u\n{GOOD_ROW.replace('0.9', '0.9x')}\n", 2, "'0.9x' is not a number"),
        (f"http://u\n{GOOD_ROW}\n\n{GOOD_ROW.replace(' 1 0 0 0 0 1', ' 1.5 0 0 0 0 1', 1)}\n", 4, "not orthonormal"),
        (f"http://u\n{GOOD_ROW.replace('0.5 0.9', '-0.5 0.9')}\n", 2, "focal length"),
    ],
)
def test_bad_re10k_files(tmp_path: Path, body: str, line: int, msg: str) -> None:
    p = tmp_path / "bad.txt"
    p.write_text(body)
    with pytest.raises(InputError, match=msg) as e:
        read_cameras(p)
    text = str(e.value)
    assert text.startswith(f"{p}:{line}: ") and "\n" not in text


@pytest.mark.parametrize("name", ["bad.txt", "bad.json", "bad.cameras.json"])
def test_empty_files(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_text("\n  \n")
    with pytest.raises(InputError, match="empty") as e:
        read_cameras(p, "re10k" if name.endswith("txt") else None)
    assert str(e.value).startswith(str(p))


def test_bad_json_and_binary_files(tmp_path: Path) -> None:
    p = tmp_path / "transforms.json"
    p.write_text('{\n "frames": [\n  {"transform_matrix": [[1, 0]] ,}\n ]\n}\n')
    with pytest.raises(InputError, match=rf"{p}:3: not valid JSON"):
        read_cameras(p)
    bad = torch.eye(4)
    bad[0, 1] = 0.5
    p.write_text(
        json.dumps({"w": 8, "h": 8, "fl_x": 5, "frames": [{"file_path": "x.png", "transform_matrix": bad.tolist()}]})
    )
    with pytest.raises(InputError, match=r"frame 0, x.png\): rotation is not orthonormal"):
        read_cameras(p)
    folder = write_colmap(tmp_path / "m", _path_cams(), binary=True)
    data = (folder / "images.bin").read_bytes()
    (folder / "images.bin").write_bytes(data[:-30])
    with pytest.raises(InputError, match="truncated binary file"):
        read_cameras(folder)
    (folder / "images.bin").write_bytes(struct.pack("<Q", 0))
    with pytest.raises(InputError, match="no images"):
        read_cameras(folder)
    with pytest.raises(InputError, match="file not found"):
        read_cameras(tmp_path / "missing.txt")
    np.savez(tmp_path / "x.npz", poses=np.zeros((1, 2, 4, 4)))
    with pytest.raises(InputError, match="missing array 'intrinsics'"):
        read_cameras(tmp_path / "x.npz")
    (tmp_path / "v.cameras.json").write_text(json.dumps({"format": "worldwarp.cameras", "version": 9}))
    with pytest.raises(InputError, match="version 9 is not supported"):
        read_cameras(tmp_path / "v.cameras.json")


def test_real_transforms_files(shared_data: Path, tmp_path: Path) -> None:
    fox = shared_data / "scenes" / "ingp_fox" / "transforms.json"
    with pytest.warns(UserWarning, match="distortion"):
        cams = read_cameras(fox)
    raw = json.loads(fox.read_text())
    assert len(cams) == len(raw["frames"]) and (cams.height, cams.width) == (raw["h"], raw["w"])
    assert float(cams.K[0, 0, 0]) == raw["fl_x"] and float(cams.K[0, 1, 2]) == raw["cy"]
    gl = torch.tensor(raw["frames"][3]["transform_matrix"], dtype=torch.float64)
    assert torch.allclose(cams.centers[3], gl[:3, 3]) and torch.allclose(cams.c2w[3, :3, 2], -gl[:3, 2], atol=1e-6)
    kitchen = read_cameras(shared_data / "scenes" / "7scenes_redkitchen" / "transforms.json")
    write_cameras(tmp_path / "k.txt", kitchen)
    _close(read_cameras(tmp_path / "k.txt", height=480, width=640), kitchen, 1e-9)
