"""Resume: refused (saying what differs) when the weights, settings or inputs differ, accepted when only
presentation differs; a damaged chunk file is one line that says how to go on; a full disk at any write is one
line and exit 2, and ``--resume`` then completes with the same frames, video and PLYs as an uninterrupted run."""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from worldwarp.cli import main
from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig

TINY = ["--height", "32", "--width", "48", "--chunk", "5", "--overlap", "2", "--steps", "2", "--cache-steps", "2"]
FRAMES = "11"  # chunks (0, 1, 5), (3, 2, 8), (6, 2, 11)


def _tiny(seed: int = 0) -> TinyDenoiser:
    torch.manual_seed(seed)
    return TinyDenoiser(TinyDenoiserConfig(width=16, depth=1, heads=2, freq_dim=8, widths=(8, 16, 16)))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("tiny")
    _tiny().save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def checkpoint_last_tensor_changed(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same model with only the last parameter tensor changed (beyond what a partial digest would see)."""
    model = _tiny()
    last = list(model.parameters())[-1]
    with torch.no_grad():
        last.view(-1)[-1] += 0.5
    path = tmp_path_factory.mktemp("tiny_changed")
    model.save_pretrained(path)
    return str(path)


# the ``image`` fixture (a random 60x90 PNG) lives in conftest.py


def _args(image: str, out: Path, checkpoint: str, *extra: str) -> list[str]:
    return ["generate", image, "--trajectory", "orbit", "--frames", FRAMES, "--out", str(out),
            "--checkpoint", checkpoint, "--quiet", *TINY, *extra]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, image: str, checkpoint: str) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(_args(image, out, checkpoint)) == 0
    return out


@contextlib.contextmanager
def disk_full_at(pattern: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The first atomic write whose path matches ``pattern`` fails with ENOSPC (as a full disk does at fsync),
    inside worldwarp.io.atomic's own handling; yields the paths that failed."""
    import worldwarp.io.atomic as atomic

    original = atomic.atomic_path
    failed: list[str] = []

    @contextlib.contextmanager
    def faulty(path):  # type: ignore[no-untyped-def]
        with original(path) as tmp:
            yield tmp
            if not failed and fnmatch.fnmatch(str(path), pattern):
                failed.append(str(path))
                raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "atomic_path", faulty)
    yield failed
    monkeypatch.setattr(atomic, "atomic_path", original)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, lines
    return lines[0]


def _same_outputs(a: Path, b: Path) -> None:
    fa, fb = sorted((a / "frames").glob("*.png")), sorted((b / "frames").glob("*.png"))
    assert [f.name for f in fa] == [f.name for f in fb] and len(fa) == int(FRAMES)
    for x, y in zip(fa, fb, strict=True):
        assert np.array_equal(np.asarray(Image.open(x)), np.asarray(Image.open(y))), x.name
    for name in ("video.mp4", "debug.mp4", "cameras.json", "transforms.json", "cameras_re10k.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    pa, pb = sorted((a / "cache").glob("*.ply")), sorted((b / "cache").glob("*.ply"))
    assert [p.name for p in pa] == [p.name for p in pb] and pa
    for x, y in zip(pa, pb, strict=True):
        assert x.read_bytes() == y.read_bytes(), x.name


def _interrupted(image: str, out: Path, checkpoint: str, monkeypatch, capsys, *extra: str) -> None:  # type: ignore[no-untyped-def]
    """A run stopped by a full disk while chunk 2 is saved: chunks 0 and 1 are on disk."""
    with disk_full_at("*chunk_0002.pt", monkeypatch) as failed:
        assert main(_args(image, out, checkpoint, *extra)) == 2
    assert failed and "disk full while writing" in _one_line(capsys)
    assert sorted(p.name for p in (out / ".worldwarp").glob("chunk_*.pt")) == ["chunk_0000.pt", "chunk_0001.pt"]


# --------------------------------------------------------------------------- fingerprint
def test_resume_refuses_other_weights(
    tmp_path: Path, image: str, checkpoint: str, checkpoint_last_tensor_changed: str, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    _interrupted(image, out, checkpoint, monkeypatch, capsys)
    assert main(_args(image, out, checkpoint_last_tensor_changed, "--resume")) == 2
    line = _one_line(capsys)
    assert "other weights;" in line and "settings" not in line and "without --resume" in line, line
    assert not (out / "video.mp4").exists() and not (out / "run.json").exists()


@pytest.mark.parametrize(
    ("extra", "what"),
    [(["--steps", "3"], "other settings;"), (["--seed", "1"], "other settings;"), (["--frames", "12"], "inputs")],
)
def test_resume_refuses_other_settings_or_inputs(
    tmp_path: Path, image: str, checkpoint: str, extra: list[str], what: str, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    _interrupted(image, out, checkpoint, monkeypatch, capsys)
    assert main([*_args(image, out, checkpoint, "--resume"), *extra]) == 2
    line = _one_line(capsys)
    assert what in line and "weights" not in line, line


def test_resume_accepts_presentation_changes(
    tmp_path: Path, image: str, checkpoint: str, reference: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    """The first part ran without --quiet and at another fps: resuming with --quiet gives the same frames."""
    out = tmp_path / "run"
    args = [a for a in _args(image, out, checkpoint) if a != "--quiet"]
    with disk_full_at("*chunk_0002.pt", monkeypatch):
        assert main([*args, "--fps", "8"]) == 2
    capsys.readouterr()
    assert main(_args(image, out, checkpoint, "--resume")) == 0
    _same_outputs(reference, out)
    run = json.loads((out / "run.json").read_text())
    ref = json.loads((reference / "run.json").read_text())
    assert run["fingerprint"] == ref["fingerprint"]


def test_fingerprint_covers_every_parameter() -> None:
    from worldwarp.pipeline import PipelineConfig, WorldWarpPipeline

    a, b = _tiny(), _tiny()
    with torch.no_grad():
        list(b.parameters())[-1].view(-1)[-1] += 1e-3
    cfg = PipelineConfig.cpu(height=32, width=48, chunk_frames=5, overlap=1, progress=False)
    da, db = WorldWarpPipeline(a, cfg).weights_digest(), WorldWarpPipeline(b, cfg).weights_digest()
    assert da != db and da == WorldWarpPipeline(_tiny(), cfg).weights_digest()
    quiet = WorldWarpPipeline(a, cfg)
    loud = WorldWarpPipeline(a, PipelineConfig.cpu(height=32, width=48, chunk_frames=5, overlap=1, progress=True))
    from worldwarp.cameras import Cameras, intrinsics_from_fov

    cams = Cameras(torch.eye(4).expand(3, 4, 4), intrinsics_from_fov(32, 48, fov_x_deg=60), 32, 48)
    state = quiet.start(torch.rand(3, 32, 48), cams, torch.ones(32, 48))
    assert quiet.fingerprint_parts(state) == loud.fingerprint_parts(state)  # progress bars are presentation


def test_wan_weights_digest_covers_the_checkpoint_and_base_files(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from worldwarp.diffusion.denoisers.registry import DenoiserSpec
    from worldwarp.runner import weights_id

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    base = tmp_path / "Wan2.1"
    for sub in ("transformer", "vae", "text_encoder"):
        (base / sub).mkdir(parents=True)
        (base / sub / "config.json").write_text("{}")
        (base / sub / "model.safetensors").write_bytes(b"\0" * 4096)
    ck = tmp_path / "stdiff.safetensors"
    ck.write_bytes(b"\1" * 8192)
    spec = DenoiserSpec(name="wan", checkpoint=str(ck), wan_model=str(base))
    first = weights_id(spec)
    assert first is not None and "stdiff=" in first and "base=" in first
    assert weights_id(spec) == first  # remembered digests give the same answer
    assert weights_id(DenoiserSpec(name="tiny")) is None
    data = bytearray(ck.read_bytes())
    data[-1] = 7
    ck.write_bytes(bytes(data))
    changed_ck = weights_id(spec)
    assert changed_ck != first
    (base / "vae" / "model.safetensors").write_bytes(b"\0" * 4095 + b"\1")
    assert weights_id(spec) not in (first, changed_ck)


# --------------------------------------------------------------------------- damaged chunks
def test_damaged_chunk_is_one_line_then_resume_from_the_last_good_one(
    tmp_path: Path, image: str, checkpoint: str, reference: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    _interrupted(image, out, checkpoint, monkeypatch, capsys)
    chunk = out / ".worldwarp" / "chunk_0001.pt"
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])  # truncated
    assert main(_args(image, out, checkpoint, "--resume")) == 2
    line = _one_line(capsys)
    assert "chunk_0001.pt is damaged" in line and "delete it" in line and "chunk 1" in line, line
    chunk.unlink()  # the option the message gives: continue from chunk 1
    assert main(_args(image, out, checkpoint, "--resume")) == 0
    _same_outputs(reference, out)


# --------------------------------------------------------------------------- full disk at every write
@pytest.mark.parametrize(
    "pattern",
    [
        "*/.worldwarp/state.json",
        "*/.worldwarp/chunk_0000.pt",
        "*/.worldwarp/cache/chunk_001.ply",
        "*/.staging/video.mp4",
        "*/.staging/frames/00004.png",
        "*/.staging/debug.mp4",
        "*/.staging/transforms.json",
        "*/.staging/cameras_re10k.txt",
        "*/run.json",
    ],
)
def test_disk_full_then_resume_completes(
    pattern: str, tmp_path: Path, image: str, checkpoint: str, reference: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    with disk_full_at(pattern, monkeypatch) as failed:
        assert main(_args(image, out, checkpoint)) == 2
    assert failed, f"no write matched {pattern}"
    line = _one_line(capsys)
    assert line.startswith("worldwarp: error: disk full while writing"), line
    assert not (out / "run.json").exists() and not (out / ".staging").exists()
    assert main(_args(image, out, checkpoint, "--resume")) == 0
    _same_outputs(reference, out)
    assert not (out / ".worldwarp").exists()


def test_chunk_checkpoint_on_a_full_disk_is_not_a_chained_error(tmp_path: Path) -> None:
    """ChunkStore.save serialises first, so a full disk is the atomic writer's InputError, not torch's
    RuntimeError."""
    import worldwarp.io.atomic as atomic
    from worldwarp.errors import InputError
    from worldwarp.pipeline import ChunkRecord, ChunkStore, GenerationState

    store = ChunkStore(tmp_path / "state", {"weights": "w", "settings": "s", "inputs": "i"})
    store.reset()
    from worldwarp.cameras import Cameras, intrinsics_from_fov

    cams = Cameras(torch.eye(4).expand(3, 4, 4), intrinsics_from_fov(8, 8, fov_x_deg=60), 8, 8)
    state = GenerationState(cams, 3, torch.rand(3, 3, 8, 8), torch.ones(3, 8, 8), [], [(0, 1, 3)])
    rec = ChunkRecord(0, 0, 1, 3, [1, 2], torch.rand(2, 3, 8, 8), torch.ones(2, 8, 8, dtype=torch.bool), None, {})
    original = atomic.os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    atomic.os.fsync = full  # type: ignore[assignment]
    try:
        with pytest.raises(InputError, match="disk full while writing .*chunk_0000.pt") as info:
            store.save(state, rec)
    finally:
        atomic.os.fsync = original  # type: ignore[assignment]
    assert not isinstance(info.value.__cause__, RuntimeError)
    assert not list((tmp_path / "state").glob("*chunk_0000*"))
