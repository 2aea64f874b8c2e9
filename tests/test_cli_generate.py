"""End-to-end tests of `worldwarp generate` on tiny settings: outputs, bad input, and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from worldwarp.cli import main

TINY = ["--height", "32", "--width", "48", "--chunk", "5", "--overlap", "2", "--steps", "2", "--cache-steps", "2"]


# the ``checkpoint`` (tiny random-weight model) and ``image`` (random 60x90 PNG) fixtures live in conftest.py


@pytest.fixture(scope="module")
def depth(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("depth") / "start.npy"
    np.save(path, np.full((60, 90), 3.0, dtype=np.float32))
    return str(path)


def _generate(image: str, out: Path, checkpoint: str, *extra: str) -> int:
    return main(["generate", image, "--trajectory", "move_forward+pan_left", "--frames", "8", "--out", str(out),
                 "--checkpoint", checkpoint, "--quiet", *TINY, *extra])  # fmt: skip


def test_generate_writes_every_output(tmp_path: Path, image: str, depth: str, checkpoint: str) -> None:
    out = tmp_path / "run"
    assert _generate(image, out, checkpoint, "--depth", depth) == 0
    for name in ("video.mp4", "debug.mp4", "cameras.json", "transforms.json", "cameras_re10k.txt", "run.json"):
        assert (out / name).is_file(), name
    assert len(list((out / "frames").glob("*.png"))) == 8
    assert len(list((out / "cache").glob("chunk_*.ply"))) == 2  # chunks (0, 1, 5) and (3, 2, 8)
    run = json.loads((out / "run.json").read_text())
    assert run["inputs"]["depth_source"] == "given"
    assert run["config"]["height"] == 32 and len(run["chunks"]) == 2
    transforms = json.loads((out / "transforms.json").read_text())
    assert len(transforms["frames"]) == 8 and transforms["frames"][7]["file_path"] == "frames/00007.png"
    assert not (out / ".worldwarp").exists() and not (out / ".staging").exists()


def test_generate_without_depth_uses_prior(tmp_path: Path, image: str, checkpoint: str) -> None:
    out = tmp_path / "prior"
    assert _generate(image, out, checkpoint) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["inputs"]["depth_source"] == "prior"
    assert any("ground-plane" in n for n in run["inputs"]["notes"])


@pytest.mark.parametrize(
    "case, message",
    [
        ("corrupt", "image"),
        ("missing", "not found"),
        ("preset", "unknown camera preset"),
        ("depth_size", "depth"),
        ("weights", "checkpoint"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, image: str, depth: str, checkpoint: str, capsys: pytest.CaptureFixture[str], case: str, message: str
) -> None:
    out = tmp_path / "bad"
    img, traj, ck, extra = image, "move_forward", checkpoint, []
    if case == "corrupt":
        img = str(tmp_path / "corrupt.png")
        Path(img).write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    elif case == "missing":
        img = str(tmp_path / "nope.png")
    elif case == "preset":
        traj = "fly_to_the_moon"
    elif case == "depth_size":
        bad = tmp_path / "small.npy"
        np.save(bad, np.ones((10, 10), dtype=np.float32))
        extra = ["--depth", str(bad)]
    elif case == "weights":
        ck = str(tmp_path / "no_weights_here")
    code = main(["generate", img, "--trajectory", traj, "--frames", "8", "--out", str(out), "--checkpoint", ck,
                 "--quiet", *TINY, *extra])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("worldwarp: error:"), err
    assert message in err[0].lower()
    assert not (out / "run.json").exists() and not (out / "video.mp4").exists()


def test_resume_after_sigkill_matches_uninterrupted(tmp_path: Path, image: str, depth: str, checkpoint: str) -> None:
    args = ["generate", image, "--trajectory", "orbit", "--frames", "24", "--depth", depth, "--checkpoint",
            checkpoint, "--quiet", *TINY]  # fmt: skip
    full = tmp_path / "full"
    assert main([*args, "--out", str(full)]) == 0

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "worldwarp", *args, "--out", str(killed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed / ".worldwarp"
    deadline = time.time() + 120
    while time.time() < deadline and not (state / "chunk_0002.pt").exists() and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "run.json").exists()
    assert main([*args, "--out", str(killed), "--resume"]) == 0
    a = sorted((full / "frames").glob("*.png"))
    b = sorted((killed / "frames").glob("*.png"))
    assert len(a) == len(b) == 24
    for fa, fb in zip(a, b, strict=True):
        assert np.array_equal(np.asarray(Image.open(fa)), np.asarray(Image.open(fb))), fa.name
