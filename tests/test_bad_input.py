"""The bad-input matrix: every bad value of every numeric option of every command, and every bad input a user
can give `generate`, is one line on stderr and exit code 2, with no traceback and no output left behind.

Numeric options are range-checked while the arguments are parsed (:mod:`worldwarp.cli.options`), so nothing has
been read, loaded or written when the error is printed.
"""

from __future__ import annotations

import errno
import json
import math
from pathlib import Path

import pytest
import torch

from worldwarp.cli import build_parser, main
from worldwarp.cli.options import Bound, numeric_options

TINY = ["--height", "32", "--width", "48", "--chunk", "5", "--overlap", "2", "--steps", "2", "--cache-steps", "2"]
OPTIONS = [(cmd, action.option_strings[-1], bound) for cmd, action, bound in numeric_options(build_parser())]


def bad_values(bound: Bound) -> list[str]:
    """Values just outside the range, NaN, infinities, a huge number and text."""
    vals = ["nan", "inf", "-inf", "1e400", str(2**70), "-" + str(2**70), "abc", ""]
    if bound.kind is int:
        vals += ["1.5", str(int(bound.lo) - 1), str(int(bound.hi) + 1)]
    else:
        vals += [repr(bound.lo) if bound.lo_open else repr(bound.lo - max(1e-3, abs(bound.lo) * 1e-3))]
        vals += [repr(bound.hi) if bound.hi_open else repr(bound.hi + max(1e-3, abs(bound.hi) * 1e-3))]
    return vals


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert lines[0].startswith("worldwarp") and ": error: " in lines[0], lines[0]
    return lines[0]


def test_every_numeric_option_is_declared() -> None:
    """The matrix covers the commands that take numbers (a new numeric option is range-checked automatically)."""
    commands = {cmd for cmd, _, _ in OPTIONS}
    assert {"generate", "demo", "trajectory", "scenes render", "eval", "train", "ui"} <= commands
    names = {(cmd, opt) for cmd, opt, _ in OPTIONS}
    for opt in ("--frames", "--strength", "--steps", "--cfg", "--seed", "--fps", "--fov", "--speed", "--scale"):
        assert ("generate", opt) in names, opt


@pytest.mark.parametrize(("command", "option", "bound"), OPTIONS, ids=[f"{c}:{o}" for c, o, _ in OPTIONS])
def test_bad_numbers_are_one_line_before_any_work(
    command: str, option: str, bound: Bound, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    for value in bad_values(bound):
        assert main([*command.split(), "--out", str(out), f"{option}={value}"]) == 2, (option, value)
        line = one_error_line(capsys)
        assert f"argument {option}" in line and repr(value) in line, line
        assert not out.exists()
    # the ends of the range themselves are accepted (where they are in it)
    convert = bound.converter()
    for end, open_ in ((bound.lo, bound.lo_open), (bound.hi, bound.hi_open)):
        if not open_:
            assert convert(str(int(end)) if bound.kind is int else repr(float(end))) == end


# --------------------------------------------------------------------------- generate, end to end
# the ``checkpoint`` (tiny random-weight model) and ``image`` (random 60x90 PNG) fixtures live in conftest.py


def _generate(image: str, out: Path, checkpoint: str, *extra: str) -> int:
    return main(["generate", image, "--trajectory", "move_forward", "--frames", "8", "--out", str(out),
                 "--checkpoint", checkpoint, "--quiet", *TINY, *extra])  # fmt: skip


def _nothing_written(out: Path) -> None:
    assert not (out / "video.mp4").exists() and not (out / "run.json").exists()
    assert not (out / ".staging").exists()


GENERATE_CASES = {
    "strength_above_1": (["--strength", "1.5"], "--strength"),
    "strength_negative": (["--strength", "-1"], "--strength"),
    "steps_0": (["--steps", "0"], "--steps"),
    "fps_0": (["--fps", "0"], "--fps"),
    "fps_nan": (["--fps", "nan"], "--fps"),
    "seed_2_70": (["--seed", str(2**70)], "--seed"),
    "seed_negative": (["--seed", "-1"], "--seed"),
    "cfg_nan": (["--cfg", "nan"], "--cfg"),
    "cfg_inf": (["--cfg", "inf"], "--cfg"),
    "frames_1": (["--frames", "1"], "--frames"),
    "scale_0": (["--scale", "0"], "--scale"),
    "scale_huge": (["--scale", "1e308"], "--scale"),
    "speed_inf": (["--speed", "inf"], "--speed"),
    "fov_180": (["--fov", "180"], "--fov"),
    "chunk_le_overlap": (["--chunk", "3", "--overlap", "3"], "overlap"),
    "device_bogus": (["--device", "bogus"], "--device"),
    "depth_model_offline": (["--depth-model", "nosuch/id"], "nosuch/id"),
}


@pytest.mark.parametrize("case", list(GENERATE_CASES))
def test_generate_bad_options(
    case: str, tmp_path: Path, image: str, checkpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    extra, needle = GENERATE_CASES[case]
    out = tmp_path / "run"
    assert _generate(image, out, checkpoint, *extra) == 2
    line = one_error_line(capsys)
    assert needle in line, line
    _nothing_written(out)


def test_device_cuda_without_a_gpu(tmp_path: Path, image: str, checkpoint: str, capsys) -> None:  # type: ignore[no-untyped-def]
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    assert _generate(image, out, checkpoint, "--device", "cuda") == 2
    assert "CUDA is not available" in one_error_line(capsys)
    _nothing_written(out)


def test_out_is_an_existing_file(tmp_path: Path, image: str, checkpoint: str, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "taken.txt"
    out.write_text("mine")
    assert _generate(image, out, checkpoint) == 2
    assert "exists and is not a folder" in one_error_line(capsys)
    assert out.read_text() == "mine"


def test_out_on_a_read_only_file_system(
    tmp_path: Path, image: str, checkpoint: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import worldwarp.io.outputs as outputs

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(outputs.tempfile, "TemporaryFile", read_only)
    out = tmp_path / "ro"
    assert _generate(image, out, checkpoint) == 2
    assert "cannot write to the output folder" in one_error_line(capsys)
    _nothing_written(out)


def test_run_json_is_valid_json(tmp_path: Path, image: str, checkpoint: str) -> None:
    """run.json is strict JSON (no NaN/Infinity) and records the weights' digest."""
    out = tmp_path / "run"
    assert _generate(image, out, checkpoint, "--cfg", "1") == 0
    run = json.loads((out / "run.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert set(run["fingerprint"]) == {"weights", "settings", "inputs"}
    assert run["fingerprint"]["weights"].startswith("TinyDenoiser:")

    def finite(x: object) -> None:
        if isinstance(x, float):
            assert math.isfinite(x)
        elif isinstance(x, dict):
            for v in x.values():
                finite(v)
        elif isinstance(x, list):
            for v in x:
                finite(v)

    finite(run)


def test_finite_json_replaces_nan() -> None:
    from worldwarp.io.outputs import finite_json

    assert finite_json({"a": [1.0, float("nan")], "b": float("inf"), "c": "x"}) == {
        "a": [1.0, None],
        "b": None,
        "c": "x",
    }


def test_unknown_depth_model_offline_fails_fast_and_cleanly() -> None:
    """No waiting for the hub's retries, and a message of our own (not transformers' multi-sentence one)."""
    import time

    from worldwarp.errors import InputError
    from worldwarp.geometry.transformers_depth import TransformersDepth, TransformersDepthConfig

    t0 = time.perf_counter()
    with pytest.raises(InputError) as info:
        TransformersDepth(TransformersDepthConfig(model="nosuch/id")).load()
    assert time.perf_counter() - t0 < 5
    msg = str(info.value)
    assert msg == (
        "depth model 'nosuch/id' is not in the local Hugging Face cache (offline); pass --depth-model PATH to a "
        "downloaded model folder, or --depth FILE with a depth map"
    )
