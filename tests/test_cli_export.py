from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from worldwarp.cameras import Cameras, intrinsics_from_fov
from worldwarp.cli import main
from worldwarp.splat.gaussians import Gaussians
from worldwarp.trajectory.io import read_cameras, write_cameras


def _gaussians(n: int, seed: int) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians.from_rgb(
        torch.randn(n, 3, generator=g), torch.rand(n, 3, generator=g), torch.full((n, 3), 0.05), torch.full((n,), 0.7)
    )


def _splat_file(path: Path, n: int = 5) -> None:
    rec = np.zeros(n, dtype=[("p", "<f4", 3), ("s", "<f4", 3), ("c", "u1", 4), ("q", "u1", 4)])
    rec["p"] = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
    rec["s"] = 0.1
    rec["c"] = [200, 100, 50, 255]
    rec["q"] = [255, 128, 128, 128]
    path.write_bytes(rec.tobytes())


def test_splat_to_ply(tmp_path: Path) -> None:
    _splat_file(tmp_path / "a.splat")
    assert main(["export", str(tmp_path / "a.splat"), "--out", str(tmp_path / "a.ply")]) == 0
    g = Gaussians.load_ply(tmp_path / "a.ply")
    assert g.num == 5
    assert torch.allclose(g.means[1], torch.tensor([3.0, 4.0, 5.0]))


def test_run_folder_cameras_and_merged_cache(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "cache").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    c2w = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
    c2w[:, 2, 3] = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    cams = Cameras(c2w, intrinsics_from_fov(32, 48, fov_x_deg=60), 32, 48)
    write_cameras(run / "cameras.json", cams, "cameras")
    _gaussians(4, 0).save_ply(run / "cache" / "chunk_000.ply")
    _gaussians(6, 1).save_ply(run / "cache" / "chunk_001.ply")

    assert main(["export", str(run), "--out", str(tmp_path / "cams.txt")]) == 0
    back = read_cameras(tmp_path / "cams.txt", height=32, width=48)
    assert torch.allclose(back.c2w, cams.c2w, atol=1e-6) and torch.allclose(back.K, cams.K, atol=1e-6)
    assert main(["export", str(run), "--merge-caches", "--out", str(tmp_path / "all.ply")]) == 0
    assert Gaussians.load_ply(tmp_path / "all.ply").num == 10


@pytest.mark.parametrize("src", ["missing.ply", "notes.txt", "folder"])
def test_bad_sources_exit_2(tmp_path: Path, src: str, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "folder").mkdir()
    assert main(["export", str(tmp_path / src), "--out", str(tmp_path / "x.ply")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "x.ply").exists()
