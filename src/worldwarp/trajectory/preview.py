"""A picture of a camera path: frusta seen from above and from the side, plus the field of view over time.

Used by ``worldwarp trajectory --preview`` and the web UI, so a user can check a path before spending GPU
time. The plot frame is the first camera's: "right" is its +x, "forward" its +z (viewing direction) and "up"
its -y (OpenCV axes), and positions are relative to its centre. The top edge of each frustum's image is drawn
thicker, so rolls show.
"""

from __future__ import annotations

import io
import os

import numpy as np
import torch
from torch import Tensor

from worldwarp.cameras import Cameras

__all__ = ["plot_frame", "render_preview", "render_preview_array"]

MAX_FRUSTA = 16


def plot_frame(cameras: Cameras) -> Tensor:
    """(3, 3) float64 rows (right, forward, up) of the plot frame described in the module docstring."""
    c2w = cameras.c2w.detach().to("cpu", torch.float64)
    up = -c2w[0, :3, 1]
    up = up / up.norm()
    fwd = c2w[0, :3, 2] / c2w[0, :3, 2].norm()
    right = torch.linalg.cross(fwd, up)
    return torch.stack([right, fwd, up])


def _frusta(cameras: Cameras, size: float) -> Tensor:
    """(N, 5, 3) world points: camera centre and image corners (TL, TR, BR, BL) at depth ``size``."""
    K = cameras.K.detach().to("cpu", torch.float64)
    c2w = cameras.c2w.detach().to("cpu", torch.float64)
    W, H = cameras.width, cameras.height
    uv = torch.tensor([[0.0, 0.0], [W, 0.0], [W, H], [0.0, H]], dtype=torch.float64)
    x = (uv[None, :, 0] - K[:, None, 0, 2]) / K[:, None, 0, 0]
    y = (uv[None, :, 1] - K[:, None, 1, 2]) / K[:, None, 1, 1]
    corners = torch.stack([x, y, torch.ones_like(x)], -1) * size  # (N, 4, 3) camera frame
    world = torch.einsum("nij,nkj->nki", c2w[:, :3, :3], corners) + c2w[:, None, :3, 3]
    return torch.cat([c2w[:, None, :3, 3], world], dim=1)


def _draw(cameras: Cameras, title: str | None, figsize: tuple[float, float], dpi: int):  # -> Figure
    from matplotlib import cm
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(cameras)
    frame = plot_frame(cameras)
    c2w = cameras.c2w.detach().to("cpu", torch.float64)
    centers = (c2w[:, :3, 3] - c2w[:1, :3, 3]) @ frame.T  # (N, 3): right, forward, up
    extent = float((centers.amax(0) - centers.amin(0)).max())
    size = 0.12 * extent if extent > 1e-9 else 0.25
    fr = (_frusta(cameras, size) - c2w[:1, None, :3, 3]) @ frame.T  # (N, 5, 3)
    shown = sorted(set(np.linspace(0, n - 1, min(n, MAX_FRUSTA)).round().astype(int).tolist()))
    colors = cm.viridis(np.linspace(0, 1, n))

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 0.8]})
    views = [(0, 1, "top view", "right", "forward"), (1, 2, "side view", "forward", "up")]
    for ax, (a, b, name, xl, yl) in zip(axes[:2], views, strict=True):
        pts = centers.numpy()
        ax.plot(pts[:, a], pts[:, b], color="0.6", lw=1, zorder=1)
        ax.scatter(pts[:, a], pts[:, b], c=colors, s=6, zorder=2)
        for k in shown:
            f = fr[k].numpy()
            col = colors[k]
            for c in range(1, 5):
                ax.plot([f[0, a], f[c, a]], [f[0, b], f[c, b]], color=col, lw=0.7)
            ring = f[[1, 2, 3, 4, 1]]
            ax.plot(ring[:, a], ring[:, b], color=col, lw=0.7)
            ax.plot(f[[1, 2], a], f[[1, 2], b], color=col, lw=2.0)  # top edge of the image
        ax.scatter([pts[0, a]], [pts[0, b]], marker="o", s=70, facecolor="none", edgecolor="tab:green", lw=2,
                   zorder=3, label="start")  # fmt: skip
        ax.scatter([pts[-1, a]], [pts[-1, b]], marker="s", s=70, facecolor="none", edgecolor="tab:red", lw=2,
                   zorder=3, label="end")  # fmt: skip
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(name)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(True, lw=0.3)
        ax.legend(loc="best", fontsize=7)
    fov = cameras.fov_x().detach().cpu().numpy()
    axes[2].plot(np.arange(n), fov, color="tab:blue")
    axes[2].set_title("horizontal field of view")
    axes[2].set_xlabel("frame")
    axes[2].set_ylabel("degrees")
    lo, hi = float(fov.min()), float(fov.max())
    pad = max(1.0, 0.1 * (hi - lo))
    axes[2].set_ylim(lo - pad, hi + pad)
    axes[2].grid(True, lw=0.3)
    fig.suptitle(title or f"{n} cameras, {cameras.width}x{cameras.height}, path extent {extent:.3g}")
    fig.tight_layout()
    return fig


def render_preview_array(
    cameras: Cameras, title: str | None = None, *, figsize: tuple[float, float] = (13.0, 4.6), dpi: int = 100
) -> np.ndarray:
    """The preview as an RGB image (H, W, 3) uint8."""
    fig = _draw(cameras, title, figsize, dpi)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return rgba[..., :3].copy()


def render_preview(cameras: Cameras, path: str | os.PathLike[str], title: str | None = None) -> None:
    """Write the preview as a PNG to ``path`` (atomically)."""
    from worldwarp.trajectory.formats._common import atomic_write_bytes

    fig = _draw(cameras, title, (13.0, 4.6), 100)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
