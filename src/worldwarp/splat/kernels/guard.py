"""The one way into native code: a declared signature per C function, checked on every call before ctypes runs it.

A :class:`NativeFunction` lists the C function's parameters in order. Tensors (:class:`Array`) are checked for
device (CPU), dtype (the call's float type ``T``, float32 or float64, unless the parameter names another), C
contiguity and shape; a shape is a tuple of fixed sizes and symbols (``("G", 3)``), and a symbol must have one
value across the call. Sizes the C function also takes as integers (:class:`Dim`) are filled from those symbols, so
a size and its array cannot disagree. Scalars are converted to the declared C type; :class:`Threads` is filled with
``torch.get_num_threads()``. Any mismatch raises :class:`KernelArgumentError` naming the function, the parameter,
what it expects and what it got, before the library is loaded or called.

The C side has one symbol per float type, ``<name>_f32`` and ``<name>_f64``, with the declared parameters.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from worldwarp.splat.kernels import build

__all__ = ["Array", "Dim", "Flag", "Handle", "Int", "KernelArgumentError", "NativeFunction", "Num", "Threads"]

FLOAT_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
INT32_MAX = 2**31 - 1


class KernelArgumentError(ValueError):
    """A native call's arguments do not match its declared signature (raised before any native code runs)."""


@dataclass(frozen=True)
class Array:
    """A tensor passed as a pointer: CPU, C-contiguous, ``dtype`` (None: the call's float type) and ``shape``.

    ``optional`` allows None (passed as a null pointer).
    """

    name: str
    shape: tuple[int | str, ...]
    dtype: torch.dtype | None = None
    optional: bool = False
    ctype: Any = ctypes.c_void_p


@dataclass(frozen=True)
class Dim:
    """An integer size taken from the symbol ``name`` of the arrays' shapes (int32 unless ``ctype`` says int64)."""

    name: str
    ctype: Any = ctypes.c_int


@dataclass(frozen=True)
class _Scalar:
    """A scalar parameter; each kind below fixes its C type."""

    name: str
    ctype: ClassVar[Any]


class Num(_Scalar):
    """A float scalar (C double)."""

    ctype = ctypes.c_double


class Int(_Scalar):
    """An int scalar (C int)."""

    ctype = ctypes.c_int


class Flag(_Scalar):
    """A bool passed as a C int (0 or 1)."""

    ctype = ctypes.c_int


class Handle(_Scalar):
    """An opaque pointer returned by an earlier call of the same library and float type (never 0)."""

    ctype = ctypes.c_void_p


@dataclass(frozen=True)
class Threads(_Scalar):
    """The worker thread count, filled with ``torch.get_num_threads()``."""

    name: str = "n_threads"
    ctype = ctypes.c_int


Param = Array | Dim | Num | Int | Flag | Handle | Threads
Check = tuple[str, Callable[[dict[str, int], dict[str, Any]], bool]]


@dataclass
class NativeFunction:
    """One C function of a kernel library, with the parameters it takes in order.

    Attributes:
        library: the library (see :data:`worldwarp.splat.kernels.build.LIBRARIES`).
        name: the C symbol without its ``_f32`` / ``_f64`` suffix.
        params: the parameters in C order.
        returns_handle: the function returns an opaque pointer (else nothing).
        checks: ``(message, predicate)``; the predicate gets the bound sizes and the converted scalars by name, and
            a False result raises with the message.
    """

    library: str
    name: str
    params: tuple[Param, ...]
    returns_handle: bool = False
    checks: tuple[Check, ...] = ()
    _symbols: dict[tuple[int, str], Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate parameter names")
        symbols = {s for p in self.params if isinstance(p, Array) for s in p.shape if isinstance(s, str)}
        unbound = [p.name for p in self.params if isinstance(p, Dim) and p.name not in symbols]
        if unbound:
            raise ValueError(f"{self.name}: sizes {unbound} appear in no array shape")

    def __call__(self, dtype: torch.dtype, sizes: dict[str, int] | None = None, **values: Any) -> int | None:
        """Check ``values`` (one per non-derived parameter, by name) and call ``<name>_<dtype suffix>``.

        Args:
            dtype: the call's float type ``T`` (float32 or float64); picks the C symbol.
            sizes: symbols bound before the arrays are checked (e.g. the sizes a handle was made with).
            values: the arrays, scalars and handles by parameter name (not the :class:`Dim` and :class:`Threads`
                ones, which are filled in).

        Returns:
            The handle for functions that return one, else None.
        """
        fn_name = f"{self.name}_{FLOAT_SUFFIX.get(dtype, '?')}"
        if dtype not in FLOAT_SUFFIX:
            raise KernelArgumentError(f"native call {self.name}: float type must be float32 or float64, got {dtype}")
        given = {p.name for p in self.params if not isinstance(p, (Dim, Threads))}
        if set(values) != given:
            missing, extra = sorted(given - set(values)), sorted(set(values) - given)
            raise KernelArgumentError(f"native call {fn_name}: missing arguments {missing}, unexpected {extra}")
        bound = dict(sizes or {})
        for p in self.params:
            if isinstance(p, Array):
                _check_array(fn_name, p, values[p.name], dtype, bound)
        args = [_convert(fn_name, p, values, bound) for p in self.params]
        scalars = {p.name: a for p, a in zip(self.params, args, strict=True) if isinstance(p, (Num, Int, Flag))}
        for message, ok in self.checks:
            if not ok(bound, scalars):
                raise KernelArgumentError(f"native call {fn_name}: {message} (sizes {bound}, scalars {scalars})")
        return self._symbol(dtype)(*args)

    def _symbol(self, dtype: torch.dtype) -> Any:
        lib = build.load_library(self.library)
        key = (id(lib), FLOAT_SUFFIX[dtype])
        fn = self._symbols.get(key)
        if fn is None:
            fn = getattr(lib, f"{self.name}_{key[1]}")
            fn.argtypes = [p.ctype for p in self.params]
            fn.restype = ctypes.c_void_p if self.returns_handle else None
            self._symbols[key] = fn
        return fn


def _shape_text(shape: tuple[int | str, ...], bound: dict[str, int]) -> str:
    named = ", ".join(str(s) for s in shape)
    if not any(isinstance(s, str) for s in shape):
        return f"({named}{',' if len(shape) == 1 else ''})"
    sized = ", ".join(str(bound.get(s, "?")) if isinstance(s, str) else str(s) for s in shape)
    return f"({named}{',' if len(shape) == 1 else ''}) = ({sized}{',' if len(shape) == 1 else ''})"


def _check_array(fn_name: str, p: Array, t: Any, dtype: torch.dtype, bound: dict[str, int]) -> None:
    want = dtype if p.dtype is None else p.dtype

    def fail(got: str) -> KernelArgumentError:
        return KernelArgumentError(
            f"native call {fn_name}: {p.name!r} must be a C-contiguous {str(want).removeprefix('torch.')} CPU tensor "
            f"of shape {_shape_text(p.shape, bound)}; got {got}"
        )

    if t is None:
        if p.optional:
            return
        raise fail("None")
    if not isinstance(t, Tensor):
        raise fail(type(t).__name__)
    if t.device.type != "cpu":
        raise fail(f"a tensor on {t.device}")
    if t.dtype != want:
        raise fail(f"dtype {str(t.dtype).removeprefix('torch.')}")
    if t.ndim != len(p.shape):
        raise fail(f"shape {tuple(t.shape)}")
    for size, want_size in zip(t.shape, p.shape, strict=True):
        if isinstance(want_size, str):
            want_size = bound.setdefault(want_size, size)
        if size != want_size:
            raise fail(f"shape {tuple(t.shape)}")
    if not t.is_contiguous():
        raise fail(f"a non-contiguous tensor (strides {t.stride()})")


def _convert(fn_name: str, p: Param, values: dict[str, Any], bound: dict[str, int]) -> Any:
    if isinstance(p, Array):
        t = values[p.name]
        return None if t is None else t.data_ptr()
    if isinstance(p, Threads):
        return torch.get_num_threads()
    if isinstance(p, Dim):
        v = bound[p.name]
        if p.ctype is ctypes.c_int and v > INT32_MAX:
            raise KernelArgumentError(f"native call {fn_name}: size {p.name} = {v} does not fit a C int")
        return v
    v = values[p.name]
    if isinstance(p, Flag):
        if not isinstance(v, bool):
            raise KernelArgumentError(f"native call {fn_name}: {p.name!r} must be a bool, got {v!r}")
        return int(v)
    if isinstance(p, Int):
        if isinstance(v, bool) or not isinstance(v, int) or abs(v) > INT32_MAX:
            raise KernelArgumentError(f"native call {fn_name}: {p.name!r} must be an int that fits a C int, got {v!r}")
        return v
    if isinstance(p, Num):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise KernelArgumentError(f"native call {fn_name}: {p.name!r} must be a number, got {v!r}")
        return float(v)
    if not isinstance(v, int) or isinstance(v, bool) or v == 0:  # Handle
        raise KernelArgumentError(f"native call {fn_name}: {p.name!r} must be a live native handle, got {v!r}")
    return v
