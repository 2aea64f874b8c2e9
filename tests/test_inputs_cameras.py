"""Camera files at any working resolution: intrinsics follow the start image's resize and crop; files without
an image size (the release's npz, RealEstate10K) take the start image's; a file made for another aspect ratio
is one line. Plus the small notes: tiny images, camera files stretched to more frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.inputs import prepare_inputs

FX = 577.1828


def release_npz(path: Path, n: int = 9) -> Path:
    """An npz of the release's layout: float32 ``poses`` (1, N, 4, 4) c2w and ``intrinsics`` (1, N, 3, 3) for
    720x480 images (principal point 360, 240), no image size."""
    poses = np.tile(np.eye(4, dtype=np.float32), (1, n, 1, 1))
    poses[0, :, 2, 3] = np.linspace(0, 0.5, n, dtype=np.float32)  # forward
    poses[0, :, 0, 3] = np.linspace(0, 0.2, n, dtype=np.float32)
    K = np.array([[FX, 0, 360], [0, FX, 240], [0, 0, 1]], dtype=np.float32)
    np.savez(path, poses=poses, intrinsics=np.tile(K, (1, n, 1, 1)))
    return path


def image_file(path: Path, w: int, h: int) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_release_npz_follows_the_image_to_the_working_resolution(tmp_path: Path) -> None:
    img = image_file(tmp_path / "000.png", 720, 480)
    npz = release_npz(tmp_path / "000_poses.npz")
    inp = prepare_inputs(img, npz, 9, 128, 192)
    K = inp.cameras.K[0].double()
    s = 192 / 720  # 720x480 -> 192x128 exactly
    assert torch.allclose(K, torch.tensor([[FX * s, 0, 96], [0, FX * s, 64], [0, 0, 1]], dtype=torch.float64))
    assert (inp.cameras.height, inp.cameras.width) == (128, 192)


def test_intrinsics_follow_the_cover_crop(tmp_path: Path) -> None:
    """720x480 into a square 32x32: resized to 48x32, 8 columns cropped on each side."""
    img = image_file(tmp_path / "000.png", 720, 480)
    npz = release_npz(tmp_path / "p.npz")
    K = prepare_inputs(img, npz, 9, 32, 32).cameras.K[0].double()
    s = 32 / 480
    assert torch.allclose(K, torch.tensor([[FX * s, 0, 360 * s - 8], [0, FX * s, 16], [0, 0, 1]], dtype=torch.float64))


def test_file_made_for_a_larger_image_of_the_same_aspect(tmp_path: Path) -> None:
    """cameras.json for 1440x960 images, start image 720x480: the file's K is halved, then follows the image."""
    from worldwarp.trajectory.io import write_cameras

    c2w = torch.eye(4, dtype=torch.float64).expand(5, 4, 4).clone()
    c2w[:, 2, 3] = torch.linspace(0, 1, 5, dtype=torch.float64)
    K = torch.tensor([[1000.0, 0, 700], [0, 1000.0, 480], [0, 0, 1]], dtype=torch.float64)
    write_cameras(tmp_path / "cameras.json", Cameras(c2w, K, 960, 1440), "cameras")
    img = image_file(tmp_path / "i.png", 720, 480)
    got = prepare_inputs(img, tmp_path / "cameras.json", 5, 64, 96).cameras.K[0].double()
    s = 96 / 1440
    assert torch.allclose(got, torch.tensor([[1000 * s, 0, 700 * s], [0, 1000 * s, 480 * s], [0, 0, 1]]).double())


def test_other_aspect_ratio_is_one_line(tmp_path: Path) -> None:
    from worldwarp.trajectory.io import write_cameras

    K = torch.tensor([[500.0, 0, 320], [0, 500.0, 180], [0, 0, 1]], dtype=torch.float64)
    write_cameras(tmp_path / "cameras.json", Cameras(torch.eye(4).double().expand(3, 4, 4), K, 360, 640), "cameras")
    img = image_file(tmp_path / "i.png", 720, 480)
    with pytest.raises(InputError) as info:
        prepare_inputs(img, tmp_path / "cameras.json", 3, 64, 96)
    msg = str(info.value)
    assert "\n" not in msg and "640x360" in msg and "720x480" in msg and "aspect" in msg


def test_re10k_takes_the_image_size(tmp_path: Path) -> None:
    """Normalised RealEstate10K intrinsics describe whatever image they are used with."""
    rows = ["https://example.com/v"] + [
        f"{i} 0.8 1.2 0.5 0.5 0 0 1 0 0 0.{i} 0 1 0 0 0 0 1 {-0.1 * i}" for i in range(4)
    ]
    (tmp_path / "c.txt").write_text("\n".join(rows) + "\n")
    img = image_file(tmp_path / "i.png", 300, 200)
    K = prepare_inputs(img, tmp_path / "c.txt", 4, 64, 96).cameras.K[0].double()
    assert torch.allclose(K, torch.tensor([[0.8 * 96, 0, 48], [0, 1.2 * 64, 32], [0, 0, 1]]).double())


def test_stretched_camera_file_and_tiny_image_get_notes(tmp_path: Path) -> None:
    img = image_file(tmp_path / "tiny.png", 3, 2)
    inp = prepare_inputs(img, release_npz(tmp_path / "p.npz", n=9), 20, 32, 48)
    assert len(inp.cameras) == 20
    assert any("has 9 cameras" in n and "20 frames" in n for n in inp.notes), inp.notes
    assert any("only 3x2" in n and "blurry" in n for n in inp.notes), inp.notes
    s = 48 / 720  # the file's size is twice its principal point (720x480), scaled to the image and on
    assert torch.allclose(
        inp.cameras.K[0].double(), torch.tensor([[FX * s, 0, 24], [0, FX * s, 16], [0, 0, 1]]).double()
    )
    one = image_file(tmp_path / "one.png", 1, 1)
    inp = prepare_inputs(one, "orbit", 10, 32, 48)
    assert any("only 1x1" in n and "blurry" in n for n in inp.notes), inp.notes
    with pytest.raises(InputError, match="aspect"):  # the release's 3:2 cameras cannot describe a square image
        prepare_inputs(one, tmp_path / "p.npz", 10, 32, 48)


def test_release_npz_for_a_larger_image_of_the_same_aspect(tmp_path: Path) -> None:
    img = image_file(tmp_path / "big.png", 1440, 960)
    K = prepare_inputs(img, release_npz(tmp_path / "p.npz"), 9, 128, 192).cameras.K[0].double()
    s = 192 / 720
    assert torch.allclose(K, torch.tensor([[FX * s, 0, 96], [0, FX * s, 64], [0, 0, 1]], dtype=torch.float64))


def test_scale_error_shows_what_the_user_typed(tmp_path: Path) -> None:
    img = image_file(tmp_path / "i.png", 90, 60)
    with pytest.raises(InputError, match=r"^--scale must be a finite number > 0, got -2.0$"):
        prepare_inputs(img, "orbit", 10, 32, 48, scale=-2.0)


def test_release_example_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`worldwarp generate 000.png --trajectory 000_poses.npz` with the release's layout (synthetic files)."""
    from worldwarp.cli import main
    from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig

    torch.manual_seed(0)
    ck = tmp_path / "tiny"
    TinyDenoiser(TinyDenoiserConfig(width=16, depth=1, heads=2, freq_dim=8, widths=(8, 16, 16))).save_pretrained(ck)
    img = image_file(tmp_path / "000.png", 720, 480)
    npz = release_npz(tmp_path / "000_poses.npz")
    out = tmp_path / "run"
    args = ["generate", str(img), "--trajectory", str(npz), "--frames", "9", "--out", str(out), "--checkpoint",
            str(ck), "--height", "32", "--width", "48", "--chunk", "5", "--overlap", "1", "--steps", "2",
            "--cache-steps", "2"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "principal point" not in err
    cams = json.loads((out / "cameras.json").read_text())
    assert len(list((out / "frames").glob("*.png"))) == 9 and cams


def test_release_npz_without_an_image_is_brought_to_the_working_size(tmp_path: Path) -> None:
    """The UI's path preview before an image is chosen: the file's own 720x480 images -> 128x192."""
    from worldwarp.inputs import trajectory_for_scene

    cams = trajectory_for_scene(release_npz(tmp_path / "p.npz"), 9, 128, 192, 1.0)
    s = 192 / 720
    assert torch.allclose(cams.K[0].double(), torch.tensor([[FX * s, 0, 96], [0, FX * s, 64], [0, 0, 1]]).double())
