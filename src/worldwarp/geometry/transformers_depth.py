"""Depth from any depth-estimation model of the ``transformers`` library (Depth Anything V1/V2, DPT, ZoeDepth,
GLPN, Depth Pro, ...) loaded with ``AutoModelForDepthEstimation`` + ``AutoImageProcessor`` from a local folder or
a hub id (which must already be in the local cache when offline).

Two kinds of model:

* **metric** models (``depth_estimation_type == "metric"`` in a Depth Anything config; ZoeDepth, GLPN, Depth
  Pro) predict z-depth in metres: it is returned as is (resized to the image).
* **relative** models (Depth Anything relative, DPT / MiDaS) predict an *affine-invariant disparity*
  ``a / z + b`` with unknown ``a > 0, b``. It is turned into depth by :func:`relative_disparity_to_depth`: the
  disparity's low/high percentiles are mapped linearly onto ``1 / far`` and ``1 / near`` and the result
  inverted, so the depth is again an affine function of true disparity (no information is lost) and
  :func:`~worldwarp.geometry.align.align_depth` with ``space="disparity", mode="scale_shift"`` recovers the
  scene's scale and shift against any reference depth. ``DepthPrediction.metric`` is False for these.

``transformers`` is imported only when a model is loaded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from worldwarp.errors import InputError
from worldwarp.geometry.base import DepthPrediction, check_images

if TYPE_CHECKING:  # pragma: no cover
    from worldwarp.cameras import Cameras

__all__ = ["TransformersDepth", "TransformersDepthConfig", "is_metric_config", "relative_disparity_to_depth"]

METRIC_MODEL_TYPES = frozenset({"zoedepth", "glpn", "depth_pro"})


@dataclass
class TransformersDepthConfig:
    """Which model to load and how to run it.

    Attributes:
        model: local model folder or hub id (e.g. ``depth-anything/Depth-Anything-V2-Small-hf``).
        metric: force metric (True) or relative (False); None = decide from the model's config.
        device: where the model runs (the caller's choice; outputs come back on the images' device).
        dtype: model dtype name ("float32", "float16", "bfloat16").
        batch_size: images per forward pass.
        near, far: relative models: depths the high and low disparity percentiles are mapped to.
        percentiles: (low, high) disparity percentiles for that mapping.
        local_files_only: never try the network (also implied by HF_HUB_OFFLINE=1).
    """

    model: str = "depth-anything/Depth-Anything-V2-Small-hf"
    metric: bool | None = None
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 4
    near: float = 1.0
    far: float = 20.0
    percentiles: tuple[float, float] = (2.0, 98.0)
    local_files_only: bool = False

    def __post_init__(self) -> None:
        if not self.model:
            raise InputError("no depth model given: pass --depth-model PATH (a model folder) or --depth FILE")
        if not (0 < self.near < self.far and math.isfinite(self.far)):
            raise InputError(f"depth near/far must satisfy 0 < near < far, got {self.near}, {self.far}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise InputError(f"depth percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        if self.batch_size < 1:
            raise InputError(f"depth batch_size must be >= 1, got {self.batch_size}")
        if not isinstance(getattr(torch, self.dtype, None), torch.dtype):
            raise InputError(f"unknown dtype {self.dtype!r} for the depth model")


def _hub_cached(repo_id: str) -> bool:
    """Whether the hub model ``repo_id`` is in the local Hugging Face cache (its config.json is)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # not a valid repo id, or no huggingface_hub
        return False


def _check_on_hub(repo_id: str, advice: str, timeout: float = 10.0) -> None:
    """One quick request: an :class:`InputError` when the hub cannot be reached or has no such model."""
    try:
        from huggingface_hub import model_info
    except ImportError:
        return
    try:
        model_info(repo_id, timeout=timeout)
    except Exception as e:
        name = type(e).__name__
        if "NotFound" in name or "HFValidation" in name:
            raise InputError(f"no depth model {repo_id!r} on the Hugging Face hub; {advice}") from None
        if "Gated" in name or "Unauthorized" in name:
            return  # exists; the download explains the access problem
        raise InputError(
            f"depth model {repo_id!r} is not in the local Hugging Face cache and the hub cannot be reached "
            f"({name}); {advice}"
        ) from None


def is_metric_config(config: Any) -> bool:
    """Whether a transformers model config describes a metric-depth model."""
    if getattr(config, "depth_estimation_type", None) == "metric":
        return True
    return getattr(config, "model_type", "") in METRIC_MODEL_TYPES


def relative_disparity_to_depth(
    disparity: Tensor, near: float, far: float, percentiles: tuple[float, float] = (2.0, 98.0)
) -> Tensor:
    """Depth (N, H, W) from affine-invariant disparity (N, H, W), per image.

    With ``lo, hi`` the disparity's percentiles, ``d' = 1/far + (d - lo) / (hi - lo) * (1/near - 1/far)``,
    clamped below at ``0.5 / far`` (so the depth never exceeds ``2 far``), and depth = ``1 / d'``. A flat
    prediction (``hi - lo`` below 1e-12 of its magnitude) gives the constant depth ``2 / (1/near + 1/far)``.
    """
    n = disparity.shape[0]
    d = disparity.reshape(n, -1).double()
    q = torch.tensor([percentiles[0] / 100, percentiles[1] / 100], dtype=d.dtype, device=d.device)
    lo, hi = torch.quantile(d, q, dim=1)  # (N,), (N,)
    span = hi - lo
    flat = span <= 1e-12 * torch.maximum(hi.abs(), lo.abs()).clamp_min(1e-300)
    a = (d - lo[:, None]) / torch.where(flat, torch.ones_like(span), span)[:, None]
    a = torch.where(flat[:, None], torch.full_like(a, 0.5), a)
    disp = (1.0 / far + a * (1.0 / near - 1.0 / far)).clamp_min(0.5 / far)
    return (1.0 / disp).reshape(disparity.shape).to(disparity.dtype if disparity.is_floating_point() else d.dtype)


class TransformersDepth:
    """:class:`~worldwarp.geometry.base.DepthEstimator` around a transformers depth model (see module doc)."""

    name = "transformers"

    def __init__(self, config: TransformersDepthConfig) -> None:
        self.config = config
        self._model: Any = None
        self._processor: Any = None
        self._metric: bool | None = None

    @property
    def metric(self) -> bool:
        """Whether the model predicts metric depth (loads the model)."""
        self.load()
        assert self._metric is not None
        return self._metric

    def load(self) -> TransformersDepth:
        """Load the model and processor now (the first :meth:`estimate` does it otherwise).

        Raises:
            InputError: the model is neither a local folder nor in the local cache, or is not a depth model.
        """
        if self._model is not None:
            return self
        c = self.config
        source = c.model
        # honour HF_HUB_OFFLINE set after huggingface_hub was imported (it reads the variable only at import)
        offline = c.local_files_only or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in (
            "1",
            "true",
            "yes",
            "on",
        )
        advice = "pass --depth-model PATH to a downloaded model folder, or --depth FILE with a depth map"
        if Path(source).expanduser().exists():
            source = str(Path(source).expanduser())
            local = True
        elif source.startswith((".", "/", "~")) or source.count("/") > 1:
            raise InputError(f"depth model folder not found: {c.model} (pass --depth-model PATH or --depth FILE)")
        else:
            local = _hub_cached(source)
            if not local:  # fail fast instead of waiting for the hub's retries
                if offline:
                    raise InputError(
                        f"depth model {c.model!r} is not in the local Hugging Face cache (offline); {advice}"
                    )
                _check_on_hub(c.model, advice)
        try:
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError as e:
            raise InputError(
                "depth models need the transformers package: pip install 'worldwarp[wan]' (or pass --depth FILE)"
            ) from e
        kwargs = {"local_files_only": offline or local}
        try:
            processor = AutoImageProcessor.from_pretrained(source, **kwargs)
            model = AutoModelForDepthEstimation.from_pretrained(source, **kwargs)
        except (OSError, ValueError, KeyError) as e:
            raise InputError(
                f"cannot load depth model {c.model!r}: not a transformers depth-estimation model folder "
                f"({type(e).__name__}); {advice}"
            ) from e
        model = model.to(device=torch.device(c.device), dtype=getattr(torch, c.dtype)).eval()
        self._model, self._processor = model, processor
        self._metric = c.metric if c.metric is not None else is_metric_config(model.config)
        return self

    @torch.inference_mode()
    def predict_raw(self, images: Tensor) -> Tensor:
        """The model's own output (N, H, W) resized (bilinear) to the images: disparity or metric depth."""
        check_images(images)
        self.load()
        c = self.config
        model, proc = self._model, self._processor
        n, _, h, w = images.shape
        outs = []
        for start in range(0, n, c.batch_size):
            batch = images[start : start + c.batch_size].detach().float().clamp(0, 1).cpu()
            inputs = proc(images=list(batch), return_tensors="pt", do_rescale=False)
            pixel_values = inputs["pixel_values"].to(device=model.device, dtype=model.dtype)
            out = model(pixel_values=pixel_values)
            if getattr(proc, "do_pad", False) and hasattr(proc, "post_process_depth_estimation"):
                post = proc.post_process_depth_estimation(out, target_sizes=[(h, w)] * len(batch))
                pred = torch.stack([p["predicted_depth"] for p in post]).float()
            else:
                pred = out.predicted_depth.float()
                if pred.ndim == 4:
                    pred = pred[:, 0]
                pred = F.interpolate(pred[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
            outs.append(pred.cpu())
        return torch.cat(outs).to(device=images.device)

    def estimate(self, images: Tensor, cameras: Cameras | None = None) -> DepthPrediction:
        """Depth (N, H, W) of the images (``cameras`` is not used)."""
        raw = self.predict_raw(images)
        c = self.config
        if self.metric:
            depth = torch.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0.0)
        else:
            depth = relative_disparity_to_depth(raw.clamp_min(0.0), c.near, c.far, c.percentiles)
        depth = depth.to(images.dtype)
        return DepthPrediction(depth=depth, valid=depth > 0, metric=self.metric)
