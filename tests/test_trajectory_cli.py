from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from worldwarp.cameras import CameraError, Cameras, intrinsics_from_fov
from worldwarp.cli import main
from worldwarp.errors import InputError
from worldwarp.trajectory.io import read_cameras
from worldwarp.trajectory.load import load_trajectory
from worldwarp.trajectory.presets import trajectory_from_spec
from worldwarp.trajectory.preview import plot_frame, render_preview_array

SAMPLE = Path(__file__).parent / "data" / "re10k_sample.txt"


def test_cli_writes_re10k_and_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, png = tmp_path / "t.txt", tmp_path / "p.png"
    assert main(["trajectory", "orbit+zoom_in", "--frames", "40", "--out", str(out), "--preview", str(png)]) == 0
    cams = read_cameras(out, height=480, width=720)
    ref = trajectory_from_spec("orbit+zoom_in", 40)
    assert (cams.c2w - ref.c2w).abs().max() < 1e-9 and (cams.K - ref.K).abs().max() < 1e-9
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape == (460, 1300, 3) and img.std() > 10
    assert "wrote 40 cameras (re10k, 720x480)" in capsys.readouterr().out


def test_cli_unknown_preset_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trajectory", "orbitt", "--frames", "5", "--out", str(tmp_path / "t.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("worldwarp: error: unknown camera preset 'orbitt'; known presets:") and err.count("\n") == 1
    assert not (tmp_path / "t.txt").exists()
    assert main(["trajectory", "orbit", "--frames", "5"]) == 2  # nothing to write


def test_cli_converts_and_extends_files(tmp_path: Path) -> None:
    out = tmp_path / "c.cameras.json"
    args = ["trajectory", str(SAMPLE), "--frames", "45", "--fit", "extrapolate", "--out", str(out)]
    assert main(args) == 0
    cams = read_cameras(out)
    src = read_cameras(SAMPLE)
    assert len(cams) == 45 and (cams.c2w[:30] - src.c2w).abs().max() < 1e-12
    folder = tmp_path / "model.colmap"
    assert main(["trajectory", str(out), "--out", str(folder), "--height", "720", "--width", "1280"]) == 0
    assert (read_cameras(folder).K[:, :2] - 2 * cams.K[:, :2]).abs().max() < 1e-9
    assert main(["trajectory", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "x.txt")]) == 2


def test_load_trajectory_spec_or_file(tmp_path: Path) -> None:
    spec = load_trajectory("pan_left", 9, height=24, width=32)
    assert torch.allclose(spec.c2w, trajectory_from_spec("pan_left", 9, height=24, width=32).c2w)
    with pytest.raises(InputError, match="number of frames"):
        load_trajectory("pan_left")
    cams = load_trajectory(SAMPLE, 60)
    src = read_cameras(SAMPLE)
    assert len(cams) == 60 and torch.allclose(cams.c2w[-1], src.c2w[-1])
    start = Cameras(torch.eye(4, dtype=torch.float64), intrinsics_from_fov(360, 640, fov_x_deg=70), 360, 640)
    rel = load_trajectory(str(SAMPLE), start=start)
    assert torch.allclose(rel.c2w[0], torch.eye(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(rel.c2w, src.w2c[0] @ src.c2w, atol=1e-12)
    scaled = load_trajectory(SAMPLE, scale=2.0)
    assert torch.allclose(scaled.centers - scaled.centers[0], 2 * (src.centers - src.centers[0]), atol=1e-12)


def test_preview_array_and_frame() -> None:
    cams = trajectory_from_spec("move_forward+pan_left", 12, height=24, width=32)
    img = render_preview_array(cams, figsize=(6.0, 2.5), dpi=50)
    assert img.shape == (125, 300, 3) and img.dtype == np.uint8
    green = (np.abs(img.astype(int) - [44, 160, 44]).sum(-1) < 30).sum()  # the start marker (tab:green)
    red = (np.abs(img.astype(int) - [214, 39, 40]).sum(-1) < 30).sum()  # the end marker (tab:red)
    assert green > 5 and red > 5
    # plot frame of an identity camera: right = +x, forward = +z, up = -y
    frame = plot_frame(cams[:1])
    expect = torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=torch.float64)
    assert torch.allclose(frame, expect)


def test_cameras_validation_additions() -> None:
    K = intrinsics_from_fov(10, 10, fov_x_deg=90)
    assert torch.allclose(
        Cameras(torch.eye(4, dtype=torch.float64), K, 10, 10).fov_y(), torch.tensor([90.0], dtype=torch.float64)
    )
    bad = K.clone()
    bad[2, 0] = 0.3
    with pytest.raises(CameraError, match="last row 0 0 1"):
        Cameras(torch.eye(4), bad, 10, 10)
