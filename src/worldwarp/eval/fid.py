"""Fréchet Inception Distance: the Fréchet distance itself and features from a user-provided network.

No Inception weights ship with worldwarp. :class:`FeatureExtractor` loads a TorchScript module (or a
``torch.export`` ``.pt2`` program) from the user's path, for instance StyleGAN2-ADA's
``inception-2015-12-05.pt`` (the TF-FID network; use ``FIDConfig(path, input_range="uint8",
return_features_kwarg=True)``), or any TorchScript model mapping images to (N, D) features. FID between small
sets is biased upwards and noisy: with fewer samples than feature dimensions the covariances are singular,
which :func:`frechet_distance` handles with the usual diagonal offset, but the numbers are only comparable
between runs with the same number of samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldwarp.errors import InputError

__all__ = ["FIDConfig", "FeatureExtractor", "feature_statistics", "fid_from_features", "frechet_distance"]


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) (unbiased, N - 1) of features (N, D)."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = ||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), with the matrix square root from
    ``scipy.linalg.sqrtm``; a singular product gets a 1e-6 diagonal offset, and a numerically complex root is
    accepted only when its imaginary part is negligible.
    """
    import scipy.linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape}")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"matrix square root has a large imaginary part {np.abs(covmean.imag).max():.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fid_from_features(gen: np.ndarray, real: np.ndarray) -> float:
    """FID between two feature sets (N1, D) and (N2, D)."""
    return frechet_distance(*feature_statistics(gen), *feature_statistics(real))


@dataclass
class FIDConfig:
    """A TorchScript feature network on disk and how to feed it.

    Attributes:
        path: the ``.pt`` TorchScript file.
        input_range: what the network expects: ``"uint8"`` (0..255 floats), ``"unit"`` ([0, 1]) or
            ``"signed"`` ([-1, 1]).
        resize: square side to resize inputs to (bilinear) before the network; None leaves them as they are.
        return_features_kwarg: call ``net(x, return_features=True)`` (StyleGAN2-ADA's Inception).
        batch_size: images per forward pass.
    """

    path: Path
    input_range: str = "uint8"
    resize: int | None = None
    return_features_kwarg: bool = True
    batch_size: int = 16


class FeatureExtractor:
    """Maps images (N, 3, H, W) in [0, 1] to features (N, D) with a TorchScript network from the user's disk.

    The network runs on the device/dtype of the images passed in (the caller owns them).
    """

    def __init__(self, net: torch.nn.Module, config: FIDConfig) -> None:
        if config.input_range not in ("uint8", "unit", "signed"):
            raise InputError(f"FID input_range must be 'uint8', 'unit' or 'signed', got {config.input_range!r}")
        self.net = net.eval() if hasattr(net, "eval") else net
        self.config = config

    @classmethod
    def load(cls, config: FIDConfig) -> FeatureExtractor:
        """Load ``config.path``: a ``.pt2`` file with ``torch.export.load``, anything else as TorchScript.

        A missing or unreadable file is an InputError.
        """
        import warnings

        path = Path(config.path)
        if not path.is_file():
            raise InputError(f"{path}: FID feature network not found (give a TorchScript file, e.g. inception)")
        try:
            if path.suffix == ".pt2":
                net = torch.export.load(str(path)).module()
            else:
                with warnings.catch_warnings():  # TorchScript is deprecated, but the Inception files use it
                    warnings.simplefilter("ignore", DeprecationWarning)
                    net = torch.jit.load(str(path), map_location="cpu")
        except Exception as e:
            kind = "torch.export program" if path.suffix == ".pt2" else "TorchScript module"
            raise InputError(f"{path}: not a {kind} ({type(e).__name__})") from e
        return cls(net, config)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        self.net.to(images.device)
        out = []
        for chunk in images.split(self.config.batch_size):
            x = chunk.float().clamp(0, 1)
            if self.config.resize is not None:
                size = (self.config.resize, self.config.resize)
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            if self.config.input_range == "uint8":
                x = (x * 255).round()
            elif self.config.input_range == "signed":
                x = 2 * x - 1
            f = self.net(x, return_features=True) if self.config.return_features_kwarg else self.net(x)
            out.append(f.reshape(f.shape[0], -1).double().cpu())
        return torch.cat(out)
