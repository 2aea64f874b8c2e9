"""Atomic writers: complete file or nothing, errors mapped to InputError."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from worldwarp.errors import InputError
from worldwarp.io.atomic import (
    atomic_directory,
    atomic_path,
    atomic_save_npy,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)


def test_write_bytes_text_json_npy(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01\x02")
    atomic_write_text(tmp_path / "sub" / "b.txt", "héllo\n")
    atomic_write_json(tmp_path / "c.json", {"x": [1, 2.5], "s": "é"})
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    atomic_save_npy(tmp_path / "d.npy", arr)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01\x02"
    assert (tmp_path / "sub" / "b.txt").read_text(encoding="utf-8") == "héllo\n"
    assert json.loads((tmp_path / "c.json").read_text(encoding="utf-8")) == {"x": [1, 2.5], "s": "é"}
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), arr)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.bin", "b.txt", "c.json", "d.npy", "sub"]


def test_exception_leaves_no_file_and_keeps_old_content(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target, "w") as f:
            f.write("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write("new but broken")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_unserialisable_json_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "x.json", {"a": object()})
    assert list(tmp_path.iterdir()) == []


def test_existing_file_mode_is_kept(tmp_path):
    target = tmp_path / "m.txt"
    target.write_text("a")
    os.chmod(target, 0o640)
    atomic_write_text(target, "b")
    assert target.read_text() == "b"
    assert target.stat().st_mode & 0o777 == 0o640


def test_disk_full_becomes_input_error(tmp_path):
    target = tmp_path / "big.bin"

    class Full:
        def write(self, _):
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(InputError, match=f"disk full while writing {target}"):
        with atomic_write(target) as f:
            f.write(b"x")
            Full().write(b"y")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_suffix(tmp_path):
    with atomic_path(tmp_path / "v.mp4") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp.name != "v.mp4"
        tmp.write_bytes(b"data")
    assert (tmp_path / "v.mp4").read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_mode_must_be_write(tmp_path):
    with pytest.raises(ValueError, match="modes"):
        with atomic_write(tmp_path / "x", "ab"):
            pass


def test_atomic_directory_commit_and_rollback(tmp_path):
    out = tmp_path / "run"
    with atomic_directory(out) as d:
        assert d.name.startswith("run.tmp-") and d.parent == tmp_path
        (d / "a.txt").write_text("1")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(InputError, match="already exists"):
        with atomic_directory(out):
            pass
    with pytest.raises(RuntimeError):
        with atomic_directory(out, overwrite=True) as d:
            (d / "b.txt").write_text("2")
            raise RuntimeError("fail")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    with atomic_directory(out, overwrite=True) as d:
        (d / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
