"""Geometry estimators behind one protocol (given depth, ground-plane prior, transformers depth models),
depth alignment, and camera poses of image sequences by structure from motion (:mod:`.sfm`, pycolmap).

``get_estimator(name, config)`` builds one by name; the transformers backend is imported only when used.
"""

from worldwarp.geometry.align import DepthAlignment, align_depth
from worldwarp.geometry.base import DepthEstimator, DepthPrediction, available_estimators, get_estimator
from worldwarp.geometry.given import GivenDepth, GivenDepthConfig
from worldwarp.geometry.prior import PriorDepth, PriorDepthConfig, PriorDepthWarning, ground_backdrop_depth
from worldwarp.geometry.sfm import PoseEstimate, PoseEstimatorConfig, check_reconstruction, estimate_poses

__all__ = [
    "DepthAlignment",
    "DepthEstimator",
    "DepthPrediction",
    "GivenDepth",
    "GivenDepthConfig",
    "PoseEstimate",
    "PoseEstimatorConfig",
    "PriorDepth",
    "PriorDepthConfig",
    "PriorDepthWarning",
    "align_depth",
    "available_estimators",
    "check_reconstruction",
    "estimate_poses",
    "get_estimator",
    "ground_backdrop_depth",
]
