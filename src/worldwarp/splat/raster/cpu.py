"""The fast CPU rasteriser: one multi-threaded C++ call per camera and pass, compiled at first use, via ctypes.

``cpu_kernels.cpp`` (next to this file) is plain C++ with a C ABI and no torch headers, so compiling it takes a few
seconds. The first call of :func:`render_cpu` builds it with the system C++ compiler (``$CXX``, else ``c++`` /
``g++`` / ``clang++``) with ``-O3 -march=native`` (retrying without ``-march=native`` when the compiler rejects it)
into ``$WORLDWARP_CACHE`` (default ``~/.cache/worldwarp``)/kernels, keyed by a hash of the source, the flags and the
CPU model; later calls and processes reuse the library. Nothing is compiled at import or install. When no compiler
works, :func:`render_cpu` warns once and falls back to the pure-torch reference.

The forward call does the whole per-camera pipeline of :mod:`.projection` + :mod:`.reference` (EWA projection,
culling, stable depth sort, tile binning, compositing); the backward call walks each tile's list back to front
(recovering transmittance by division) and then differentiates the projection, returning gradients w.r.t. the
means, quaternions, log-scales, opacity logits and colours directly. Spherical-harmonic colours are evaluated in
torch (:func:`view_colors`), so their autograd stays there. Threads: ``torch.get_num_threads()``.

The same library holds the SSIM of image planes with its analytic gradient (:func:`ssim_cpu`, behind
:func:`worldwarp.splat.ssim.ssim_fused`) and the whole loss of the 3DGS cache fit taken from :func:`render_cpu`'s raw
outputs (:func:`fit_loss_cpu`, used by :func:`worldwarp.splat.cache.fit_cache`).
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

from worldwarp.errors import InputError
from worldwarp.splat.gaussians import Gaussians
from worldwarp.splat.raster.projection import T_STOP, eval_sh

__all__ = [
    "KernelBuildError",
    "camera_array",
    "fit_loss_cpu",
    "kernels_available",
    "load_kernels",
    "render_cpu",
    "reprojection_mask_cpu",
    "ssim_cpu",
    "view_colors",
]

SOURCE = Path(__file__).with_name("cpu_kernels.cpp")
BASE_FLAGS = ["-O3", "-std=c++17", "-fno-math-errno", "-shared", "-fPIC", "-pthread", "-Wno-psabi"]
NATIVE_FLAGS = ["-march=native"]
SH_C0 = 0.28209479177387814

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


def _cpu_model() -> str:
    """CPU model and feature flags (a -march=native library is only valid on the CPU it was built for)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    keep = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))][:2]
    return "\n".join(keep)


def _build(path: Path, cxx: str, flags: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        res = subprocess.run([cxx, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True)
        if res.returncode != 0:
            raise KernelBuildError(f"compiling {SOURCE.name} failed:\n{res.stderr.strip()[-2000:]}")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _declare(lib: ctypes.CDLL) -> None:
    p, i32, i64, f64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_double
    for suffix in ("f32", "f64"):
        fwd = getattr(lib, f"ww_forward_{suffix}")
        fwd.argtypes = [i64, p, p, p, p, p, p, i32, i32, f64, f64, i32, i32, p, p, p, p]
        fwd.restype = p
        bwd = getattr(lib, f"ww_backward_{suffix}")
        bwd.argtypes = [p, p, p, p, p, i32, p, p, p, p, p]
        bwd.restype = None
        free = getattr(lib, f"ww_free_{suffix}")
        free.argtypes = [p]
        free.restype = None
        rep = getattr(lib, f"ww_reproject_{suffix}")
        rep.argtypes = [i32, i32, p, p, p, i32, p, i32, i32, p, f64, f64, i32, i32, i32]
        rep.restype = None
        sim = getattr(lib, f"ww_ssim_{suffix}")
        sim.argtypes = [i32, i32, i32, p, p, p, i32, f64, f64, p, p, i32]
        sim.restype = None
        fit = getattr(lib, f"ww_fit_loss_{suffix}")
        fit.argtypes = [i32, i32, p, p, p, p, p, p, p, p, i32, f64, f64, f64, f64, f64, f64, f64, p, p, p, p, i32]
        fit.restype = None


def _load_built(cxx: str, flags: list[str]) -> ctypes.CDLL:
    key = hashlib.sha256(
        SOURCE.read_bytes() + "\n".join([cxx, *flags, platform.machine(), _cpu_model()]).encode()
    ).hexdigest()[:16]
    path = _cache_dir() / f"worldwarp_raster_{key}.so"
    if not path.exists():
        _build(path, cxx, flags)
    lib = ctypes.CDLL(str(path))
    _declare(lib)
    return lib


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
            try:
                lib = _load_built(cxx, BASE_FLAGS + NATIVE_FLAGS)
            except (OSError, KernelBuildError):
                lib = _load_built(cxx, BASE_FLAGS)  # compilers without -march=native
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


def camera_array(c2w: Tensor, K: Tensor, dtype: torch.dtype) -> Tensor:
    """(16,) ``R_wc`` (row-major), ``t_wc``, fx, fy, cx, cy of one camera, computed in ``dtype`` on the CPU.

    Same arithmetic as :func:`~worldwarp.splat.raster.projection.project_gaussians` (c2w converted first).
    """
    c2w = c2w.to("cpu", dtype)
    K = K.to("cpu", dtype)
    R_wc = c2w[:3, :3].T
    t_wc = -R_wc @ c2w[:3, 3]
    intr = torch.stack([K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
    return torch.cat([R_wc.reshape(9), t_wc, intr]).contiguous()


def view_colors(gaussians: Gaussians, campos: Tensor) -> Tensor:
    """SH colours (G, 3) seen from the camera centre ``campos`` (3,), as in ``project_gaussians``.

    Degree 0 skips the view directions (the DC basis is a constant).
    """
    if gaussians.sh.shape[1] == 1:
        return (gaussians.sh[:, 0] * SH_C0 + 0.5).clamp_min(0.0)
    dirs = gaussians.means - campos.to(gaussians.means)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return eval_sh(gaussians.sh, dirs)


class _Context:
    """Owns one C++ forward context; freed when the autograd graph that holds it goes away."""

    def __init__(self, lib: ctypes.CDLL, suffix: str, handle: int) -> None:
        self.free_fn = getattr(lib, f"ww_free_{suffix}")
        self.handle: int | None = handle

    def free(self) -> None:
        if self.handle is not None:
            self.free_fn(self.handle)
            self.handle = None

    def __del__(self) -> None:
        self.free()


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


class _RenderCPU(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        means: Tensor,
        quats: Tensor,
        log_scales: Tensor,
        logits: Tensor,
        colors: Tensor,
        cam: Tensor,
        height: int,
        width: int,
        near: float,
        keep: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        lib = load_kernels()
        suffix = "f64" if means.dtype == torch.float64 else "f32"
        ins = [t.detach().contiguous() for t in (means, quats, log_scales, logits, colors, cam)]
        kw = {"dtype": means.dtype}
        color = torch.empty(height, width, 3, **kw)
        alpha = torch.empty(height, width, **kw)
        depth = torch.empty(height, width, **kw)
        stats = torch.zeros(2, dtype=torch.int64)
        handle = getattr(lib, f"ww_forward_{suffix}")(
            means.shape[0], *map(_ptr, ins), height, width, near, T_STOP, torch.get_num_threads(), int(keep),
            *map(_ptr, (color, alpha, depth, stats)),
        )  # fmt: skip
        state = _Context(lib, suffix, handle)
        if keep:
            ctx.state = state
            ctx.save_for_backward(*ins[:4])
        else:
            state.free()
        return color, alpha, depth

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, g_color: Tensor, g_alpha: Tensor, g_depth: Tensor
    ) -> tuple[Tensor | None, ...]:
        lib = load_kernels()
        means, quats, log_scales, logits = ctx.saved_tensors
        state: _Context = ctx.state
        if state.handle is None:
            raise RuntimeError("the cpu rasteriser's saved state was already freed")
        suffix = "f64" if means.dtype == torch.float64 else "f32"
        grads_in = [gr.contiguous() for gr in (g_color, g_alpha, g_depth)]
        outs = [torch.zeros_like(t) for t in (means, quats, log_scales, logits)]
        outs.append(torch.zeros(means.shape[0], 3, dtype=means.dtype))
        getattr(lib, f"ww_backward_{suffix}")(
            state.handle, _ptr(quats), *map(_ptr, grads_in), torch.get_num_threads(), *map(_ptr, outs),
        )  # fmt: skip
        return (*outs, None, None, None, None, None)


def _reference(
    gaussians: Gaussians, c2w: Tensor, K: Tensor, height: int, width: int, near: float
) -> tuple[Tensor, Tensor, Tensor]:
    from worldwarp.splat.raster.projection import project_gaussians, sorted_visible
    from worldwarp.splat.raster.reference import composite_reference

    return composite_reference(sorted_visible(project_gaussians(gaussians, c2w, K, height, width, near)), height, width)


def render_cpu(
    gaussians: Gaussians, c2w: Tensor, K: Tensor, height: int, width: int, near: float = 0.01
) -> tuple[Tensor, Tensor, Tensor]:
    """Render one camera (``c2w`` (4, 4) OpenCV, ``K`` (3, 3)) with the C++ kernels.

    Returns ``color`` (H, W, 3) = sum_i w_i c_i, ``alpha`` (H, W) and ``depth`` (H, W) = sum_i w_i z_i (not divided
    by alpha), like ``composite_reference(sorted_visible(project_gaussians(...)))`` and differentiable w.r.t. all
    Gaussian parameters. Inputs on another device are moved to the CPU and the outputs moved back; float32 and
    float64 run natively, other dtypes in float32. Falls back to the torch reference (with a warning) when the
    kernels cannot be built.
    """
    try:
        load_kernels()
    except KernelBuildError as e:
        warnings.warn(f"fast CPU rasteriser unavailable ({e}); using the torch reference", stacklevel=2)
        return _reference(gaussians, c2w, K, height, width, near)
    device, dtype = gaussians.device, gaussians.dtype
    work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    g = gaussians if (device.type == "cpu" and dtype == work) else gaussians.to("cpu", work)
    c2w = c2w.to("cpu", work)
    colors = view_colors(g, c2w[:3, 3])
    params = (g.means, g.quats, g.log_scales, g.opacity_logits, colors)
    keep = torch.is_grad_enabled() and any(t.requires_grad for t in params)
    cam = camera_array(c2w, K, work)
    color, alpha, depth = _RenderCPU.apply(*params, cam, height, width, float(near), keep)
    if device.type != "cpu" or dtype != work:
        return color.to(device, dtype), alpha.to(device, dtype), depth.to(device, dtype)
    return color, alpha, depth


def reprojection_mask_cpu(
    depth: Tensor,
    valid: Tensor,
    c2w: Tensor,
    K: Tensor,
    history_w2c: Tensor,
    history_K: Tensor,
    history_depths: Tensor,
    *,
    rel_tol: float,
    near: float,
    sampling: str,
    window: int = 1,
) -> Tensor:
    """Fused reprojection check of one rendered view (see :func:`worldwarp.warp.reprojection_mask`).

    Args:
        depth: (H, W) rendered z-depth of the target view (float32 or float64, CPU); the check runs in its dtype.
        valid: (H, W) bool, the pixels to check (others stay False).
        c2w, K: the target camera (4, 4) and (3, 3).
        history_w2c, history_K: (V, 4, 4) world-to-camera and (V, 3, 3) intrinsics of the history views.
        history_depths: (V, Hh, Wh) their z-depth.
        rel_tol, near, sampling, window: as in ``reprojection_mask`` (``"nearest"`` or ``"bilinear"``; ``window``
            odd >= 1, above 1 only with ``"nearest"``).

    Returns:
        (H, W) bool: ``valid`` and the pixel's 3D point agrees with at least one history depth.
        Raises :class:`KernelBuildError` when the kernels cannot be built (callers fall back to torch) and
        :class:`~worldwarp.errors.InputError` for an invalid ``window``.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise InputError(f"reprojection window must be an odd integer >= 1, got {window!r}")
    if window > 1 and sampling != "nearest":
        raise InputError(f"reprojection window > 1 needs depth_sampling 'nearest', got {window} with {sampling!r}")
    lib = load_kernels()
    dtype = depth.dtype
    suffix = "f64" if dtype == torch.float64 else "f32"
    h, w = depth.shape
    c2w, K = c2w.to("cpu", dtype), K.to("cpu", dtype)
    intr_t = torch.stack([K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
    tcam = torch.cat([c2w[:3, :3].reshape(9), c2w[:3, 3], intr_t]).contiguous()
    hw, hK = history_w2c.to("cpu", dtype), history_K.to("cpu", dtype)
    intr = torch.stack([hK[:, 0, 0], hK[:, 1, 1], hK[:, 0, 2], hK[:, 1, 2]], dim=1)
    hcams = torch.cat([hw[:, :3, :3].reshape(-1, 9), hw[:, :3, 3], intr], dim=1).contiguous()  # (V, 16)
    hd = history_depths.to("cpu", dtype).contiguous()
    out = valid.to("cpu", torch.uint8).contiguous().clone()
    d = depth.to("cpu").contiguous()
    getattr(lib, f"ww_reproject_{suffix}")(
        h, w, _ptr(d), _ptr(out), _ptr(tcam), hcams.shape[0], _ptr(hcams), hd.shape[1], hd.shape[2],
        _ptr(hd), float(rel_tol), float(near), int(sampling == "bilinear"), window, torch.get_num_threads(),
    )  # fmt: skip
    return out.bool()


def ssim_cpu(a: Tensor, b: Tensor, taps: Tensor, c1: float, c2: float, need_grad: bool) -> tuple[Tensor, Tensor | None]:
    """Fused SSIM of image planes with the C++ kernel (see :mod:`worldwarp.splat.ssim` for the definition).

    Args:
        a, b: (P, H, W) planes (float32 or float64, CPU, one dtype), H and W at least ``taps.numel()``.
        taps: (window,) 1-D Gaussian taps of the separable window, in the planes' dtype.
        c1, c2: the SSIM stabilising constants.
        need_grad: also return the gradient of every plane's map sum w.r.t. ``a``.

    Returns:
        ``sums`` (P,) float64: the sum of each plane's (H - window + 1, W - window + 1) SSIM map, and the gradient
        (P, H, W) of those sums w.r.t. ``a`` (None unless ``need_grad``). Raises :class:`KernelBuildError` when the
        kernels cannot be built.
    """
    lib = load_kernels()
    suffix = "f64" if a.dtype == torch.float64 else "f32"
    a, b, taps = a.contiguous(), b.contiguous(), taps.to(a.dtype).contiguous()
    p, h, w = a.shape
    sums = torch.empty(p, dtype=torch.float64)
    grad = torch.empty_like(a) if need_grad else None
    getattr(lib, f"ww_ssim_{suffix}")(
        p, h, w, _ptr(a), _ptr(b), _ptr(taps), taps.numel(), float(c1), float(c2), _ptr(sums),
        None if grad is None else _ptr(grad), torch.get_num_threads(),
    )  # fmt: skip
    return sums, grad


def fit_loss_cpu(
    color: Tensor,
    alpha: Tensor,
    depth_acc: Tensor,
    background: Tensor,
    target: Tensor,
    depth_ok: Tensor,
    inv_depth: Tensor,
    taps: Tensor,
    weights: tuple[float, float, float],
    near: float,
    alpha_eps: float,
) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """The 3DGS cache loss of one view (see :func:`worldwarp.splat.cache.cache_loss`) from :func:`render_cpu`'s outputs.

    Args:
        color, alpha, depth_acc: (H, W, 3), (H, W), (H, W) as returned by :func:`render_cpu` (float32 or float64).
        background: (3,) colour behind the Gaussians.
        target: (3, H, W) target frame; depth_ok: (H, W) bool, valid ground-truth depth; inv_depth: (H, W) its
            inverse (anything where not valid).
        taps: (window,) SSIM taps; H and W must be at least ``window``.
        weights: ``(w_l1, w_ssim, w_depth)``; near: rendered depths <= near get no depth loss.
        alpha_eps: the rendered depth is ``depth_acc / alpha`` where ``alpha > alpha_eps``, else 0.

    Returns:
        ``terms`` (4,) float64: mean L1, mean SSIM (1 when ``w_ssim`` is 0), mean inverse-depth error (0 without
        depth pixels) and the number of depth pixels; and the gradients of the weighted loss w.r.t. ``color``,
        ``alpha`` and ``depth_acc``. Raises :class:`KernelBuildError` when the kernels cannot be built.
    """
    lib = load_kernels()
    dtype = color.dtype
    suffix = "f64" if dtype == torch.float64 else "f32"
    h, w = alpha.shape
    ins = [t.detach().to(dtype).contiguous() for t in (color, alpha, depth_acc, background, target, inv_depth, taps)]
    ok = depth_ok.to(torch.bool).contiguous().view(torch.uint8)
    terms = torch.empty(4, dtype=torch.float64)
    grads = (torch.empty_like(ins[0]), torch.empty_like(ins[1]), torch.empty_like(ins[2]))
    getattr(lib, f"ww_fit_loss_{suffix}")(
        h, w, *map(_ptr, ins[:5]), _ptr(ok), _ptr(ins[5]), _ptr(ins[6]), taps.numel(), *map(float, weights),
        float(near), float(alpha_eps), 0.01**2, 0.03**2, _ptr(terms), *map(_ptr, grads), torch.get_num_threads(),
    )  # fmt: skip
    return terms, grads
