"""Registry/factory and the given-depth estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldwarp.errors import InputError
from worldwarp.geometry import (
    DepthEstimator,
    DepthPrediction,
    GivenDepth,
    GivenDepthConfig,
    PriorDepth,
    PriorDepthConfig,
    available_estimators,
    get_estimator,
)


def test_registry_names_and_errors():
    assert available_estimators() == ["given", "prior", "stereo", "transformers"]
    names = "given, prior, stereo, transformers"
    with pytest.raises(InputError, match=f"unknown depth estimator 'midas'; choose one of: {names}"):
        get_estimator("midas")
    with pytest.raises(InputError, match="has no option bogus; options: .*camera_height"):
        get_estimator("prior", bogus=1)
    with pytest.raises(TypeError, match="takes a PriorDepthConfig"):
        get_estimator("prior", GivenDepthConfig())
    est = get_estimator("prior", camera_height=2.0)
    assert isinstance(est, PriorDepth) and est.config.camera_height == 2.0
    assert isinstance(est, DepthEstimator)
    assert isinstance(get_estimator("prior", PriorDepthConfig(horizon=0.6)), PriorDepth)


def test_prediction_validates_shapes():
    with pytest.raises(ValueError, match="valid"):
        DepthPrediction(depth=torch.ones(1, 2, 2), valid=torch.ones(1, 2, 3, dtype=torch.bool), metric=True)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        DepthPrediction(depth=torch.ones(2, 2), valid=torch.ones(2, 2, dtype=torch.bool), metric=True)


def test_given_from_files_and_tensors(tmp_path):
    d0 = np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 5.0]], np.float32)
    np.save(tmp_path / "d0.npy", d0)
    est = get_estimator("given", sources=(tmp_path / "d0.npy", torch.full((2, 3), 7.0)))
    assert isinstance(est, GivenDepth)
    images = torch.rand(2, 3, 2, 3, dtype=torch.float64)
    pred = est.estimate(images)
    assert pred.metric and pred.depth.dtype == torch.float64 and pred.depth.shape == (2, 2, 3)
    torch.testing.assert_close(pred.depth[0], torch.from_numpy(d0).double())
    assert pred.valid[0].tolist() == [[True, True, False], [True, True, True]]
    assert (pred.depth[1] == 7.0).all()


def test_given_count_and_size_checks(tmp_path):
    np.save(tmp_path / "d.npy", np.ones((4, 6), np.float32))
    est = GivenDepth(GivenDepthConfig(sources=(tmp_path / "d.npy",), fit="exact"))
    with pytest.raises(InputError, match=r"got 1 depth map\(s\) for 2 image\(s\)"):
        est.estimate(torch.rand(2, 3, 4, 6))
    with pytest.raises(InputError, match=r"d\.npy is 6x4 \(WxH\) but image 0 is 5x4"):
        est.estimate(torch.rand(1, 3, 4, 5))
    assert est.estimate(torch.rand(1, 3, 4, 6)).depth.shape == (1, 4, 6)


def test_given_prepare_fit_follows_prepare_image(tmp_path):
    from worldwarp.io.depth import prepare_depth

    d = torch.arange(1, 1 + 20 * 30, dtype=torch.float32).reshape(20, 30)
    est = GivenDepth(GivenDepthConfig(sources=(d,)))  # default fit="prepare"
    pred = est.estimate(torch.rand(1, 3, 8, 8))
    torch.testing.assert_close(pred.depth[0], prepare_depth(d, (8, 8)))
    assert torch.isin(pred.depth, d).all()


def test_given_invalid_tensor():
    est = GivenDepth(GivenDepthConfig(sources=(torch.zeros(2, 2),)))
    with pytest.raises(InputError, match="depth #0: depth map has no valid pixels"):
        est.estimate(torch.rand(1, 3, 2, 2))
    with pytest.raises(InputError, match="fit must be"):
        GivenDepthConfig(fit="stretch")


def test_given_real_depth(shared_data):
    import warnings

    from worldwarp.io.images import load_image

    root = shared_data / "scenes" / "7scenes_redkitchen"
    img, _ = load_image(root / "images" / "frame_00000.jpg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = get_estimator("given", sources=(root / "depth" / "frame_00000.npy",), fit="exact").estimate(img[None])
    assert pred.depth.shape == (1, 480, 640) and 0.5 < float(pred.valid.float().mean()) < 0.95
