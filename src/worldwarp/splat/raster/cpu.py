"""The fast CPU compositor: tiled, multi-threaded C++ kernels, compiled at first use, called through ctypes.

``cpu_kernels.cpp`` (next to this file) is plain C++ with a C ABI and no torch headers, so compiling it takes
about a second. The first call of :func:`composite_cpu` builds it with the system C++ compiler (``$CXX``, else
``c++`` / ``g++``) into ``$WORLDWARP_CACHE`` (default ``~/.cache/worldwarp``)/kernels, keyed by a hash of the
source and flags; later calls and processes reuse the library. Nothing is compiled at import or install. When
no compiler works, :func:`composite_cpu` warns once and falls back to the pure-torch reference compositor.

Semantics are those of :mod:`.reference` (the shared footprint rule of :mod:`.projection`); the backward
pass is hand-written in C++ and walks each pixel's list back to front, recovering transmittance by division.
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
import warnings
from pathlib import Path

import torch
from torch import Tensor

from worldwarp.splat.raster.projection import T_STOP, Projected

__all__ = ["KernelBuildError", "composite_cpu", "kernels_available", "load_kernels"]

SOURCE = Path(__file__).with_name("cpu_kernels.cpp")
CXX_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-pthread"]

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_failed: str | None = None


class KernelBuildError(RuntimeError):
    """The C++ kernels could not be compiled or loaded."""


def _cache_dir() -> Path:
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


def _build(path: Path, cxx: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        res = subprocess.run([cxx, *CXX_FLAGS, str(SOURCE), "-o", tmp], capture_output=True, text=True)
        if res.returncode != 0:
            raise KernelBuildError(f"compiling {SOURCE.name} failed:\n{res.stderr.strip()[-2000:]}")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _declare(lib: ctypes.CDLL) -> None:
    p, i32, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        fwd = getattr(lib, f"ww_forward_{suffix}")
        fwd.argtypes = [i64, p, p, p, p, p, p, i32, i32, real, i32, p, p, p, p, p]
        fwd.restype = None
        bwd = getattr(lib, f"ww_backward_{suffix}")
        bwd.argtypes = [i64, p, p, p, p, p, p, i32, i32, i32, p, p, p, p, p, p, p, p, p, p]
        bwd.restype = None


def load_kernels() -> ctypes.CDLL:
    """The compiled kernel library (built on first use); raises :class:`KernelBuildError` when impossible."""
    global _lib, _failed
    with _lock:
        if _lib is not None:
            return _lib
        if _failed is not None:
            raise KernelBuildError(_failed)
        try:
            cxx = _compiler()
            key = hashlib.sha256(
                SOURCE.read_bytes() + " ".join([cxx, *CXX_FLAGS, platform.machine()]).encode()
            ).hexdigest()[:16]
            path = _cache_dir() / f"worldwarp_raster_{key}.so"
            if not path.exists():
                _build(path, cxx)
            lib = ctypes.CDLL(str(path))
            _declare(lib)
        except (OSError, KernelBuildError) as e:
            _failed = str(e)
            raise KernelBuildError(_failed) from None
        _lib = lib
        return lib


def kernels_available() -> bool:
    """Whether the C++ kernels can be used (builds them on the first call)."""
    try:
        load_kernels()
    except KernelBuildError:
        return False
    return True


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


class _CompositeCPU(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        means2d: Tensor,
        conics: Tensor,
        opacities: Tensor,
        colors: Tensor,
        depths: Tensor,
        extents: Tensor,
        height: int,
        width: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        lib = load_kernels()
        suffix = "f64" if means2d.dtype == torch.float64 else "f32"
        ins = [t.detach().contiguous() for t in (means2d, conics, opacities, colors, depths, extents)]
        g = ins[0].shape[0]
        kw = {"dtype": means2d.dtype}
        color = torch.empty(height, width, 3, **kw)
        alpha = torch.empty(height, width, **kw)
        depth = torch.empty(height, width, **kw)
        trans = torch.empty(height, width, **kw)
        last = torch.empty(height, width, dtype=torch.int32)
        getattr(lib, f"ww_forward_{suffix}")(
            g, *map(_ptr, ins), height, width, T_STOP, torch.get_num_threads(),
            *map(_ptr, (color, alpha, depth, trans, last)),
        )  # fmt: skip
        ctx.save_for_backward(*ins, trans, last)
        ctx.hw = (height, width)
        return color, alpha, depth

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, g_color: Tensor, g_alpha: Tensor, g_depth: Tensor
    ) -> tuple[Tensor | None, ...]:
        lib = load_kernels()
        means2d, conics, opacities, colors, depths, extents, trans, last = ctx.saved_tensors
        height, width = ctx.hw
        suffix = "f64" if means2d.dtype == torch.float64 else "f32"
        grads_in = [
            torch.zeros(s, dtype=means2d.dtype) if gr is None else gr.contiguous()
            for gr, s in ((g_color, (height, width, 3)), (g_alpha, (height, width)), (g_depth, (height, width)))
        ]
        outs = [torch.zeros_like(t) for t in (means2d, conics, opacities, colors, depths)]
        getattr(lib, f"ww_backward_{suffix}")(
            means2d.shape[0], *map(_ptr, (means2d, conics, opacities, colors, depths, extents)),
            height, width, torch.get_num_threads(), *map(_ptr, grads_in), _ptr(trans), _ptr(last),
            *map(_ptr, outs),
        )  # fmt: skip
        return (*outs, None, None, None)


def composite_cpu(proj: Projected, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Tiled compositing of depth-sorted visible Gaussians; same contract as ``composite_reference``.

    Inputs on another device are moved to the CPU and the outputs moved back (differentiably). float32 and
    float64 run natively; other dtypes run in float32.
    """
    try:
        load_kernels()
    except KernelBuildError as e:
        warnings.warn(f"fast CPU rasteriser unavailable ({e}); using the torch reference", stacklevel=2)
        from worldwarp.splat.raster.reference import composite_reference

        return composite_reference(proj, height, width)
    device, dtype = proj.means2d.device, proj.means2d.dtype
    work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    args = [
        t.to("cpu", work) for t in (proj.means2d, proj.conics, proj.opacities, proj.colors, proj.depths, proj.extents)
    ]
    color, alpha, depth = _CompositeCPU.apply(*args, height, width)
    return color.to(device, dtype), alpha.to(device, dtype), depth.to(device, dtype)
