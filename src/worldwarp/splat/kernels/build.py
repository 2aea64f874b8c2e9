"""Compile a kernel source at first use and load it with ctypes.

A library is built from ``<name>.cpp`` (next to this file, with the shared ``common.h``) by the system C++ compiler
(``$CXX``, else ``c++`` / ``g++`` / ``clang++``) with ``-O3 -march=native`` (retrying without ``-march=native`` when
the compiler rejects it) into ``$WORLDWARP_CACHE`` (default ``$XDG_CACHE_HOME`` or ``~/.cache``, then
``worldwarp``)/kernels, keyed by a hash of the sources, the flags and the CPU model; later calls and processes reuse
it. Nothing is compiled at import or install. When no compiler works, :func:`load_library` raises
:class:`KernelBuildError` (remembered for the process) and :func:`kernels_available` returns False, so callers can
fall back to their plain-torch twins.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

__all__ = ["LIBRARIES", "KernelBuildError", "cache_dir", "kernels_available", "load_library"]

SOURCE_DIR = Path(__file__).parent
LIBRARIES = ("raster", "losses", "reproject")
SHARED_HEADER = SOURCE_DIR / "common.h"
BASE_FLAGS = ["-O3", "-std=c++17", "-fno-math-errno", "-shared", "-fPIC", "-pthread", "-Wno-psabi"]
NATIVE_FLAGS = ["-march=native"]

_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL] = {}
_failed: dict[str, str] = {}


class KernelBuildError(RuntimeError):
    """A C++ kernel library could not be compiled or loaded."""


def cache_dir() -> Path:
    """Where built libraries are kept (``$WORLDWARP_CACHE/kernels``, else the user cache's ``worldwarp/kernels``)."""
    root = os.environ.get("WORLDWARP_CACHE")
    if root:
        return Path(root) / "kernels"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "worldwarp" / "kernels"


def _compiler() -> str:
    for cand in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if cand and shutil.which(cand):
            return cand
    raise KernelBuildError("no C++ compiler found (set $CXX)")


def _cpu_model() -> str:
    """CPU model and feature flags (a -march=native library is only valid on the CPU it was built for)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    keep = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))][:2]
    return "\n".join(keep)


def _build(source: Path, path: Path, cxx: str, flags: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        res = subprocess.run([cxx, *flags, str(source), "-o", tmp], capture_output=True, text=True)
        if res.returncode != 0:
            raise KernelBuildError(f"compiling {source.name} failed:\n{res.stderr.strip()[-2000:]}")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _load_built(name: str, cxx: str, flags: list[str]) -> ctypes.CDLL:
    source = SOURCE_DIR / f"{name}.cpp"
    key = hashlib.sha256(
        source.read_bytes()
        + SHARED_HEADER.read_bytes()
        + "\n".join([cxx, *flags, platform.machine(), _cpu_model()]).encode()
    ).hexdigest()[:16]
    path = cache_dir() / f"worldwarp_{name}_{key}.so"
    if not path.exists():
        _build(source, path, cxx, flags)
    return ctypes.CDLL(str(path))


def load_library(name: str) -> ctypes.CDLL:
    """The compiled library ``name`` (one of :data:`LIBRARIES`), built on first use.

    Raises :class:`KernelBuildError` when it cannot be built or loaded (and again on later calls, without retrying).
    """
    if name not in LIBRARIES:
        raise ValueError(f"unknown kernel library {name!r}; one of {', '.join(LIBRARIES)}")
    with _lock:
        lib = _loaded.get(name)
        if lib is not None:
            return lib
        if name in _failed:
            raise KernelBuildError(_failed[name])
        try:
            cxx = _compiler()
            try:
                lib = _load_built(name, cxx, BASE_FLAGS + NATIVE_FLAGS)
            except (OSError, KernelBuildError):
                lib = _load_built(name, cxx, BASE_FLAGS)  # compilers without -march=native
        except (OSError, KernelBuildError) as e:
            _failed[name] = str(e)
            raise KernelBuildError(_failed[name]) from None
        _loaded[name] = lib
        return lib


def kernels_available(name: str) -> bool:
    """Whether library ``name`` can be used (builds it on the first call)."""
    try:
        load_library(name)
    except KernelBuildError:
        return False
    return True
