"""LPIPS network plumbing (random weights, checked against a functional reference) and FID closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from worldwarp.errors import InputError
from worldwarp.eval.fid import FeatureExtractor, FIDConfig, feature_statistics, fid_from_features, frechet_distance
from worldwarp.eval.lpips import LPIPS, LPIPSConfig

ALEX_CONVS = [(0, 4, 2), (3, 1, 2), (6, 1, 1), (8, 1, 1), (10, 1, 1)]  # (index, stride, padding)


def _random_weights(net: str, seed: int = 0) -> tuple[dict, dict]:
    torch.manual_seed(seed)
    model = LPIPS(net)
    backbone = {f"features.{k}": torch.randn_like(v) * 0.1 for k, v in model.features.state_dict().items()}
    backbone["classifier.1.weight"] = torch.zeros(2, 2)  # ignored, like torchvision's classifier
    heads = {f"lin{k}.model.1.weight": torch.rand_like(lin.weight) for k, lin in enumerate(model.lins)}
    return backbone, heads


def _reference_alex_lpips(x: torch.Tensor, y: torch.Tensor, backbone: dict, heads: dict) -> torch.Tensor:
    """LPIPS-Alex written out with functional calls, independent of the module's layer bookkeeping."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(img: torch.Tensor) -> list[torch.Tensor]:
        h = ((2 * img - 1) - shift) / scale
        out = []
        for n, (idx, stride, pad) in enumerate(ALEX_CONVS):
            if n in (1, 2):
                h = F.max_pool2d(h, 3, 2)
            h = F.relu(F.conv2d(h, backbone[f"features.{idx}.weight"], backbone[f"features.{idx}.bias"], stride, pad))
            out.append(h)
        return out

    total = torch.zeros(x.shape[0])
    for k, (a, b) in enumerate(zip(feats(x), feats(y), strict=True)):
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        total += ((a - b) ** 2 * heads[f"lin{k}.model.1.weight"].view(1, -1, 1, 1)).sum(1).mean((1, 2))
    return total


def test_lpips_alex_matches_functional_reference(tmp_path):
    backbone, heads = _random_weights("alex")
    torch.save(backbone, tmp_path / "alexnet-owt-test.pth")
    torch.save(heads, tmp_path / "alex.pth")
    model = LPIPS.from_folder(LPIPSConfig(tmp_path, "alex"))
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 64, 72, generator=g), torch.rand(2, 3, 64, 72, generator=g)
    ours = model(x, y)
    ref = _reference_alex_lpips(x, y, backbone, heads)
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-6)
    assert torch.allclose(model(x, x), torch.zeros(2), atol=1e-7)
    assert (ours > 0).all()


def test_lpips_vgg_loads_torchvision_layout(tmp_path):
    backbone, heads = _random_weights("vgg")
    torch.save(backbone, tmp_path / "vgg16-test.pth")
    torch.save(heads, tmp_path / "vgg.pth")
    model = LPIPS.from_folder(LPIPSConfig(tmp_path, "vgg"))
    assert torch.equal(model.features[28].weight, backbone["features.28.weight"])
    x = torch.rand(1, 3, 32, 32)
    assert float(model(x, x)) == pytest.approx(0.0, abs=1e-7)


def test_lpips_missing_weights_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="LPIPS weight folder not found"):
        LPIPS.from_folder(LPIPSConfig(tmp_path / "nope"))
    with pytest.raises(InputError, match=r"alex\.pth"):
        LPIPS.from_folder(LPIPSConfig(tmp_path))
    _, heads = _random_weights("alex")
    torch.save(heads, tmp_path / "alex.pth")
    with pytest.raises(InputError, match=r"alexnet\*\.pth"):
        LPIPS.from_folder(LPIPSConfig(tmp_path))
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "alexnet.pth")
    with pytest.raises(RuntimeError):  # a state dict of the wrong network is never half-loaded silently
        LPIPS.from_folder(LPIPSConfig(tmp_path))
    with pytest.raises(InputError, match="unknown LPIPS network"):
        LPIPS.from_folder(LPIPSConfig(tmp_path, "squeeze"))


def test_frechet_distance_closed_forms():
    # commuting covariances: d = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 1.0])
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    expected = 5.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, abs=1e-9)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2 in standard deviations
    assert frechet_distance(np.array([2.0]), np.array([[9.0]]), np.array([-1.0]), np.array([[1.0]])) == pytest.approx(
        9.0 + 4.0
    )
    # non-commuting pair with known root: sigma1 = I, sigma2 = S -> tr(I + S - 2 S^1/2)
    s = np.array([[2.0, 1.0], [1.0, 2.0]])  # eigen 1 and 3
    assert frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), s) == pytest.approx(
        2 + 4 - 2 * (1 + np.sqrt(3)), abs=1e-9
    )
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_fid_from_samples_approaches_closed_form():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20000, 3))
    y = rng.normal(size=(20000, 3)) * 2 + np.array([1.0, 0, 0])
    mu, cov = feature_statistics(x)
    assert cov.shape == (3, 3) and np.allclose(mu, 0, atol=0.03)
    assert fid_from_features(x, y) == pytest.approx(1.0 + 3 * (2 - 1) ** 2, abs=0.1)
    with pytest.raises(ValueError):
        feature_statistics(x[:1])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script, still what FID files use
def test_feature_extractor_loads_torchscript(tmp_path):
    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    path = tmp_path / "net.pt"
    torch.jit.script(Net()).save(str(path))
    ext = FeatureExtractor.load(FIDConfig(path, input_range="uint8", resize=16, return_features_kwarg=False))
    img = torch.rand(5, 3, 20, 30)
    feats = ext(img)
    assert feats.shape == (5, 3)
    # uint8 scaling: a constant image of 0.5 maps to 128 (rounded) in every channel
    assert torch.allclose(ext(torch.full((1, 3, 8, 8), 0.5)), torch.full((1, 3), 128.0, dtype=torch.float64))
    with pytest.raises(InputError, match="not found"):
        FeatureExtractor.load(FIDConfig(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a TorchScript module"):
        FeatureExtractor.load(FIDConfig(tmp_path / "junk.pt"))
