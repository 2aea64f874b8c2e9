"""Aligning a relative depth prediction to reference depth (e.g. the 3DGS cache's rendered depth).

Per frame, fit ``y ~= s x + t`` (``mode="scale_shift"``) or ``y ~= s x`` (``mode="scale"``) by weighted least
squares, where ``x, y`` are the prediction and the reference either as depth (``space="depth"``) or as
disparity ``1 / depth`` (``space="disparity"``, the right space for affine-invariant models such as Depth
Anything or MiDaS). The aligned depth is ``s x + t`` (depth space) or ``1 / (s / pred + t)`` (disparity space);
pixels whose aligned value is not positive become 0 (invalid).

``robust=True`` starts from a median-based estimate (median ratio for scale; medians and median absolute
deviations for scale and shift) and refines it by iteratively reweighted least squares with Tukey's biweight
(``c = 4.685`` robust standard deviations, the standard deviation estimated as 1.4826 x the median absolute
residual), so gross outliers (occlusions, sky, wrong cache pixels) get weight 0. With exact inliers the fit is
exact. All arithmetic is float64; frames are fitted together, vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = ["DepthAlignment", "align_depth"]

TUKEY_C = 4.685
MAD_TO_SIGMA = 1.4826


@dataclass
class DepthAlignment:
    """Result of :func:`align_depth`.

    Attributes:
        depth: aligned depth, the prediction's shape and dtype; 0 where invalid.
        scale: (N,) per-frame scale ``s`` (N = number of frames; a single (H, W) map gives N = 1).
        shift: (N,) per-frame shift ``t`` (0 for ``mode="scale"``), in the fitting space's units.
        inliers: bool mask of the prediction's shape: pixels with a positive weight in the final fit.
        num_valid: (N,) number of usable pixels per frame; frames with fewer than ``min_points`` keep
            ``s = 1, t = 0``.
    """

    depth: Tensor
    scale: Tensor
    shift: Tensor
    inliers: Tensor
    num_valid: Tensor


def _nanmedian(x: Tensor, mask: Tensor) -> Tensor:
    """(N,) median of x (N, P) over mask (N, P); NaN for empty rows."""
    return torch.where(mask, x, torch.full_like(x, float("nan"))).nanmedian(dim=1).values


def _weighted_fit(x: Tensor, y: Tensor, w: Tensor, with_shift: bool) -> tuple[Tensor, Tensor]:
    """(N,) s, t minimising sum w (y - s x - t)^2 per row; a degenerate shift fit falls back to scale only."""
    sxx = (w * x * x).sum(1)
    sxy = (w * x * y).sum(1)
    s_only = sxy / sxx.clamp_min(1e-300)
    if not with_shift:
        return s_only, torch.zeros_like(s_only)
    sw, sx, sy = w.sum(1), (w * x).sum(1), (w * y).sum(1)
    det = sw * sxx - sx * sx
    ok = det > 1e-12 * (sw * sxx).clamp_min(1e-300)
    det_safe = torch.where(ok, det, torch.ones_like(det))
    s = (sw * sxy - sx * sy) / det_safe
    t = (sy - s * sx) / sw.clamp_min(1e-300)
    return torch.where(ok, s, s_only), torch.where(ok, t, torch.zeros_like(t))


def align_depth(
    pred: Tensor,
    reference: Tensor,
    valid: Tensor | None = None,
    mode: Literal["scale", "scale_shift"] = "scale",
    space: Literal["depth", "disparity"] = "depth",
    robust: bool = True,
    *,
    iterations: int = 20,
    min_points: int = 8,
) -> DepthAlignment:
    """Align ``pred`` to ``reference`` where ``valid`` (see module doc).

    Args:
        pred: (H, W) or (N, H, W) predicted depth (> 0 where usable).
        reference: same shape, reference depth (> 0 where known, 0 = unknown).
        valid: same shape, bool, pixels allowed in the fit (e.g. the warp mask); None = everywhere. Pixels where
            either depth is not a positive finite number are always excluded.
        mode: ``"scale"`` or ``"scale_shift"``.
        space: fit in ``"depth"`` or ``"disparity"``.
        robust: median initialisation + Tukey IRLS (``iterations`` rounds); False = plain least squares.
        min_points: frames with fewer usable pixels are left unaligned (s = 1, t = 0).
    """
    if mode not in ("scale", "scale_shift"):
        raise ValueError(f"mode must be 'scale' or 'scale_shift', got {mode!r}")
    if space not in ("depth", "disparity"):
        raise ValueError(f"space must be 'depth' or 'disparity', got {space!r}")
    if pred.shape != reference.shape or (valid is not None and valid.shape != pred.shape):
        raise ValueError(
            f"shapes differ: pred {tuple(pred.shape)}, reference {tuple(reference.shape)}"
            + ("" if valid is None else f", valid {tuple(valid.shape)}")
        )
    if pred.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (N, H, W), got shape {tuple(pred.shape)}")
    shape = pred.shape
    p = pred.reshape(-1, shape[-2] * shape[-1]).double()
    r = reference.reshape(p.shape).to(p)
    m = torch.isfinite(p) & torch.isfinite(r) & (p > 0) & (r > 0)
    if valid is not None:
        m &= valid.reshape(p.shape).to(device=p.device, dtype=torch.bool)
    zero = torch.zeros_like(p)
    if space == "disparity":
        x = torch.where(m, 1.0 / torch.where(m, p, torch.ones_like(p)), zero)
        y = torch.where(m, 1.0 / torch.where(m, r, torch.ones_like(r)), zero)
    else:
        x, y = torch.where(m, p, zero), torch.where(m, r, zero)
    with_shift = mode == "scale_shift"
    count = m.sum(1)
    w = m.double()

    if robust:
        med_x, med_y = _nanmedian(x, m), _nanmedian(y, m)
        if with_shift:
            mad_x = _nanmedian((x - med_x[:, None]).abs(), m)
            mad_y = _nanmedian((y - med_y[:, None]).abs(), m)
            ratio = _nanmedian(y / torch.where(m, x, torch.ones_like(x)), m)
            s = torch.where(mad_x > 0, mad_y / torch.where(mad_x > 0, mad_x, torch.ones_like(mad_x)), ratio)
            t = torch.where(mad_x > 0, med_y - s * med_x, torch.zeros_like(s))
        else:
            s = _nanmedian(y / torch.where(m, x, torch.ones_like(x)), m)
            t = torch.zeros_like(s)
        s, t = torch.nan_to_num(s, nan=1.0), torch.nan_to_num(t, nan=0.0)
        floor = 1e-9 * torch.nan_to_num(_nanmedian(y.abs(), m), nan=1.0).clamp_min(1e-300)
        for _ in range(iterations):
            res = y - s[:, None] * x - t[:, None]
            sigma = MAD_TO_SIGMA * torch.nan_to_num(_nanmedian(res.abs(), m), nan=0.0)
            sigma = torch.maximum(sigma, floor)
            u = res / (TUKEY_C * sigma[:, None])
            w = torch.where(m & (u.abs() < 1), (1 - u * u) ** 2, zero)
            s_new, t_new = _weighted_fit(x, y, w, with_shift)
            change = (s_new - s).abs() * x.abs().amax(1) + (t_new - t).abs()
            converged = bool((change <= 1e-14 * y.abs().amax(1)).all())
            s, t = s_new, t_new
            if converged:
                break
    else:
        s, t = _weighted_fit(x, y, w, with_shift)

    enough = count >= max(min_points, 2 if with_shift else 1)
    s = torch.where(enough, s, torch.ones_like(s))
    t = torch.where(enough, t, torch.zeros_like(t))
    w = torch.where(enough[:, None], w, zero)

    usable = torch.isfinite(p) & (p > 0)
    p_safe = torch.where(usable, p, torch.ones_like(p))
    if space == "disparity":
        disp = s[:, None] / p_safe + t[:, None]
        ok = usable & (disp > 0)
        out = torch.where(ok, 1.0 / torch.where(ok, disp, torch.ones_like(disp)), zero)
    else:
        d = s[:, None] * p_safe + t[:, None]
        out = torch.where(usable & (d > 0), d, zero)
    return DepthAlignment(
        depth=out.reshape(shape).to(pred.dtype),
        scale=s,
        shift=t,
        inliers=(w > 0).reshape(shape),
        num_valid=count,
    )
