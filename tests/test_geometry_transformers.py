"""transformers depth models: real loading path on tiny random-weight Depth Anything models saved offline."""

from __future__ import annotations

import pytest
import torch

from worldwarp.errors import InputError
from worldwarp.geometry import get_estimator
from worldwarp.geometry.align import align_depth
from worldwarp.geometry.transformers_depth import (
    TransformersDepth,
    TransformersDepthConfig,
    relative_disparity_to_depth,
)


def _tiny_depth_anything(folder, kind: str) -> None:
    transformers = pytest.importorskip("transformers")
    backbone = transformers.Dinov2Config(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        patch_size=14,
        image_size=28,
        out_features=["stage1", "stage2"],
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        reassemble_factors=[4, 2],
        neck_hidden_sizes=[8, 16],
        fusion_hidden_size=8,
        head_hidden_size=8,
        depth_estimation_type=kind,
        max_depth=20,
    )
    torch.manual_seed(0)
    transformers.DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    processor = transformers.DPTImageProcessor(
        size={"height": 28, "width": 28},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    processor.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth_models")
    _tiny_depth_anything(root / "relative", "relative")
    _tiny_depth_anything(root / "metric", "metric")
    return root


def test_relative_model(tiny_models):
    images = torch.rand(3, 3, 30, 44, generator=torch.Generator().manual_seed(0))
    est = get_estimator("transformers", model=str(tiny_models / "relative"), batch_size=2, near=0.5, far=10.0)
    assert isinstance(est, TransformersDepth)
    pred = est.estimate(images)
    assert not pred.metric and pred.depth.shape == (3, 30, 44) and pred.depth.dtype == torch.float32
    assert pred.valid.all() and (pred.depth > 0).all() and (pred.depth <= 20.0 + 1e-4).all()
    raw = est.predict_raw(images)  # the model's disparity, resized
    assert raw.shape == (3, 30, 44)
    torch.testing.assert_close(pred.depth, relative_disparity_to_depth(raw.clamp_min(0), 0.5, 10.0))
    # batching does not change the result
    one = TransformersDepth(TransformersDepthConfig(model=str(tiny_models / "relative"), batch_size=1))
    torch.testing.assert_close(one.predict_raw(images), raw, atol=1e-5, rtol=1e-4)


def test_metric_model_returns_model_depth(tiny_models):
    images = torch.rand(1, 3, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    est = TransformersDepth(TransformersDepthConfig(model=str(tiny_models / "metric")))
    pred = est.estimate(images)
    assert pred.metric and pred.depth.dtype == torch.float64
    model, proc = est._model, est._processor
    with torch.no_grad():
        x = proc(images=list(images.float()), return_tensors="pt", do_rescale=False)["pixel_values"]
        want = model(pixel_values=x).predicted_depth  # 28x28 input: no resize needed
    torch.testing.assert_close(pred.depth.float(), want.float(), atol=1e-5, rtol=1e-5)
    forced = TransformersDepth(TransformersDepthConfig(model=str(tiny_models / "metric"), metric=False))
    assert not forced.estimate(images).metric


def test_missing_model_says_what_to_pass(tmp_path):
    est = get_estimator("transformers", model=str(tmp_path / "no_such_model"))
    with pytest.raises(InputError, match="--depth-model PATH.*--depth FILE"):
        est.estimate(torch.rand(1, 3, 8, 8))
    pytest.importorskip("transformers")
    hub = get_estimator("transformers", model="nobody-has/this-depth-model-xyz")
    with pytest.raises(InputError, match=r"depth model 'nobody-has/this-depth-model-xyz' is not in the local Hugging"):
        hub.estimate(torch.rand(1, 3, 8, 8))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="cannot load depth model"):
        TransformersDepth(TransformersDepthConfig(model=str(tmp_path / "empty_dir"))).load()


def test_relative_disparity_to_depth_is_affine_in_disparity():
    g = torch.Generator().manual_seed(2)
    true_depth = 1.0 + 9.0 * torch.rand(2, 12, 16, generator=g, dtype=torch.float64)
    disparity = 3.0 / true_depth + 0.7  # what a relative model predicts, up to an affine map
    depth = relative_disparity_to_depth(disparity, near=1.0, far=20.0, percentiles=(0.0, 100.0))
    # extremes land exactly on near / far
    assert float(depth[0].min()) == pytest.approx(1.0) and float(depth[0].max()) == pytest.approx(20.0)
    # and disparity-space alignment recovers the true depth exactly
    aligned = align_depth(depth, true_depth, None, mode="scale_shift", space="disparity")
    assert float((aligned.depth - true_depth).abs().max()) < 1e-9
    flat = relative_disparity_to_depth(torch.full((1, 3, 3), 0.25), 1.0, 3.0)
    torch.testing.assert_close(flat, torch.full((1, 3, 3), 1.5))


def test_config_validation():
    with pytest.raises(InputError, match="no depth model given"):
        TransformersDepthConfig(model="")
    with pytest.raises(InputError, match="near < far"):
        TransformersDepthConfig(near=5.0, far=1.0)
    with pytest.raises(InputError, match="unknown dtype"):
        TransformersDepthConfig(dtype="float99")
