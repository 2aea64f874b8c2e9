"""Atomic outputs: a file (or a folder of files) appears complete under its final name, or not at all.

Every writer in worldwarp goes through :func:`atomic_write` (one file) or :func:`atomic_directory` (several
files committed together). The data is written to a temporary name in the *same* folder (so the final
``os.replace`` / ``os.rename`` never crosses a file system), flushed and fsync'ed, then renamed over the target.
On any exception the temporary file is removed and an existing target is left untouched. A full disk becomes an
:class:`~worldwarp.errors.InputError` ``"disk full while writing PATH"``; a folder that cannot be written becomes
an InputError naming it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from worldwarp.errors import InputError

__all__ = [
    "atomic_directory",
    "atomic_path",
    "atomic_save_npy",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "make_dir",
]

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_umask_cache: list[int] = []


def _umask() -> int:
    """The process umask (read once; ``os.umask`` can only be read by setting it)."""
    if not _umask_cache:
        old = os.umask(0o022)
        os.umask(old)
        _umask_cache.append(old)
    return _umask_cache[0]


def _user_error(e: OSError, path: Path) -> InputError | None:
    """The InputError an OSError while writing ``path`` stands for, or None if it is not the user's."""
    if e.errno in _NO_SPACE:
        return InputError(f"disk full while writing {path}")
    if isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return InputError(f"cannot write {path}: permission denied or read-only file system")
    return None


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _final_mode(path: Path) -> int:
    """Permissions for the committed file: the existing target's, else 0o666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def make_dir(path: str | os.PathLike[str]) -> None:
    """``mkdir -p path``; a full disk, a read-only filesystem or a missing permission is one-line user error."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        err = _user_error(e, folder)
        if err is None:
            raise
        raise err from e


def _make_parent(path: Path) -> None:
    make_dir(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path (same folder, same suffix) for a writer that needs a file *name*.

    For tools such as ffmpeg that write by name and pick the format from the suffix. When the block ends
    without an exception the temporary file is fsync'ed and renamed onto ``path``; otherwise it is removed and
    ``path`` is left as it was. The parent folder is created when missing.
    """
    path = Path(path)
    _make_parent(path)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    except OSError as e:
        err = _user_error(e, path)
        if err is None:
            raise
        raise err from e
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        err = _user_error(e, path)
        if err is None:
            raise
        raise err from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing; commit it onto ``path`` when the block succeeds.

    Args:
        path: final file name; its parent folder is created when missing.
        mode: ``"wb"`` (default) or ``"w"`` (text; ``encoding`` defaults to UTF-8). Only write modes.
        encoding: text encoding for ``mode="w"``.

    Yields the open file object. On an exception inside the block the temporary file is deleted and ``path``
    keeps its previous content (or stays absent). ``ENOSPC`` becomes ``InputError("disk full while writing
    PATH")``.
    """
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_write supports modes 'w' and 'wb', got {mode!r}")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp:
        try:
            with open(tmp, mode, encoding=encoding) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            err = _user_error(e, Path(path))
            if err is None:
                raise
            raise err from e


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path, "w", encoding=encoding) as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    """Serialise ``obj`` as JSON (UTF-8, trailing newline) to ``path`` atomically.

    The object is serialised before anything is opened, so an unserialisable object leaves no trace.
    """
    text = json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"
    atomic_write_text(path, text)


def atomic_save_npy(path: str | os.PathLike[str], array: Any) -> None:
    """``np.save`` ``array`` (numpy array or tensor) to ``path`` atomically (no pickles; the name is kept)."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    with atomic_write(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder of outputs under a temporary name ``PATH.tmp-xxxx`` and rename it to ``path`` at the end.

    Args:
        path: final folder.
        overwrite: replace an existing ``path`` (it is moved aside, the new folder renamed in, then the old one
            deleted). Without it an existing ``path`` is an InputError raised before anything is written.

    Yields the temporary folder to write into. On an exception it is deleted and ``path`` is untouched.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"output folder {path} already exists (choose another name or allow overwriting)")
    if path.exists() and not path.is_dir():
        raise InputError(f"output {path} exists and is not a folder")
    _make_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{path.name}.tmp-"))
    except OSError as e:
        err = _user_error(e, path)
        if err is None:
            raise
        raise err from e
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        old: Path | None = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{path.name}.old-"))
            os.rmdir(old)
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except OSError:
            if old is not None:
                os.rename(old, path)
            raise
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        err = _user_error(e, path)
        if err is None:
            raise
        raise err from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
