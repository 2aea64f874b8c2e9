"""The depth-estimator protocol and the registry that builds estimators by name.

Every estimator turns a batch of images (N, 3, H, W) in [0, 1] into a :class:`DepthPrediction`:

* ``depth`` (N, H, W): z-depth, 0 where invalid;
* ``valid`` (N, H, W) bool: pixels whose depth can be used;
* ``confidence`` (N, H, W) in [0, 1] or None;
* ``metric``: True when the depth has an absolute scale (given depth, metric models, the prior's scene units);
  False for affine-invariant predictions that must be aligned (:func:`worldwarp.geometry.align.align_depth`,
  ``space="disparity"``, ``mode="scale_shift"``) before they are mixed with other geometry.

Names: ``"given"`` (:class:`~worldwarp.geometry.given.GivenDepth`), ``"transformers"``
(:class:`~worldwarp.geometry.transformers_depth.TransformersDepth`), ``"prior"``
(:class:`~worldwarp.geometry.prior.PriorDepth`), ``"stereo"`` (:class:`~worldwarp.geometry.stereo.StereoDepth`,
plane-sweep stereo between posed images). :func:`get_estimator` imports the module only when asked.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from torch import Tensor

from worldwarp.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from worldwarp.cameras import Cameras

__all__ = ["DepthEstimator", "DepthPrediction", "available_estimators", "get_estimator", "check_images"]


@dataclass
class DepthPrediction:
    """Depth of N images.

    Attributes:
        depth: (N, H, W) z-depth, 0 where invalid.
        valid: (N, H, W) bool.
        metric: absolute scale (True) or affine-invariant up to scale and shift in disparity (False).
        confidence: (N, H, W) in [0, 1], or None when the estimator has none.
    """

    depth: Tensor
    valid: Tensor
    metric: bool
    confidence: Tensor | None = None

    def __post_init__(self) -> None:
        if self.depth.ndim != 3:
            raise ValueError(f"depth must be (N, H, W), got shape {tuple(self.depth.shape)}")
        if self.valid.shape != self.depth.shape:
            raise ValueError(f"valid {tuple(self.valid.shape)} does not match depth {tuple(self.depth.shape)}")
        if self.confidence is not None and self.confidence.shape != self.depth.shape:
            raise ValueError(
                f"confidence {tuple(self.confidence.shape)} does not match depth {tuple(self.depth.shape)}"
            )

    def __len__(self) -> int:
        return self.depth.shape[0]


@runtime_checkable
class DepthEstimator(Protocol):
    """Anything with ``estimate(images, cameras=None) -> DepthPrediction``.

    ``images`` is (N, 3, H, W) in [0, 1]; the prediction has the same N, H, W and lives on the images' device.
    ``cameras`` (N views, size H x W) is optional; estimators that need intrinsics (the prior) use it when given.
    """

    name: str

    def estimate(self, images: Tensor, cameras: Cameras | None = None) -> DepthPrediction: ...


def check_images(images: Tensor) -> None:
    """ValueError unless ``images`` is a float (N, 3, H, W) batch."""
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"images must be float (N, 3, H, W), got {images.dtype} of shape {tuple(images.shape)}")


# name -> (module, estimator class, config class)
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "given": ("worldwarp.geometry.given", "GivenDepth", "GivenDepthConfig"),
    "transformers": ("worldwarp.geometry.transformers_depth", "TransformersDepth", "TransformersDepthConfig"),
    "prior": ("worldwarp.geometry.prior", "PriorDepth", "PriorDepthConfig"),
    "stereo": ("worldwarp.geometry.stereo", "StereoDepth", "StereoDepthConfig"),
}


def available_estimators() -> list[str]:
    """Names accepted by :func:`get_estimator`."""
    return sorted(_REGISTRY)


def get_estimator(name: str, config: Any | None = None, **fields: Any) -> DepthEstimator:
    """Build the estimator called ``name``.

    Args:
        name: one of :func:`available_estimators`.
        config: that estimator's config dataclass (e.g. :class:`~worldwarp.geometry.prior.PriorDepthConfig`);
            when omitted it is built from ``fields``.
        fields: config fields (only without ``config``); an unknown field is an InputError listing the valid
            ones.

    Raises:
        InputError: unknown name (the message lists the names) or unknown config field.
    """
    entry = _REGISTRY.get(name)
    if entry is None:
        raise InputError(f"unknown depth estimator {name!r}; choose one of: {', '.join(available_estimators())}")
    module = importlib.import_module(entry[0])
    cls, cfg_cls = getattr(module, entry[1]), getattr(module, entry[2])
    if config is not None and fields:
        raise ValueError("pass either a config object or config fields, not both")
    if config is None:
        names = {f.name for f in dataclasses.fields(cfg_cls)}
        unknown = sorted(set(fields) - names)
        if unknown:
            raise InputError(
                f"depth estimator {name!r} has no option {', '.join(unknown)}; options: {', '.join(sorted(names))}"
            )
        config = cfg_cls(**fields)
    elif not isinstance(config, cfg_cls):
        raise TypeError(f"depth estimator {name!r} takes a {cfg_cls.__name__}, got {type(config).__name__}")
    return cls(config)
