"""Geometry estimators behind one protocol (given depth, ground-plane prior, transformers depth models) and
depth alignment.

``get_estimator(name, config)`` builds one by name; the transformers backend is imported only when used.
"""

from worldwarp.geometry.align import DepthAlignment, align_depth
from worldwarp.geometry.base import DepthEstimator, DepthPrediction, available_estimators, get_estimator
from worldwarp.geometry.given import GivenDepth, GivenDepthConfig
from worldwarp.geometry.prior import PriorDepth, PriorDepthConfig, PriorDepthWarning, ground_backdrop_depth

__all__ = [
    "DepthAlignment",
    "DepthEstimator",
    "DepthPrediction",
    "GivenDepth",
    "GivenDepthConfig",
    "PriorDepth",
    "PriorDepthConfig",
    "PriorDepthWarning",
    "align_depth",
    "available_estimators",
    "get_estimator",
    "ground_backdrop_depth",
]
