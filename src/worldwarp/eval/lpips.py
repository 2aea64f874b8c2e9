"""LPIPS (Zhang et al., CVPR 2018) with an AlexNet or VGG-16 backbone, defined here in plain torch.

No weights ship with worldwarp and none are downloaded: :meth:`LPIPS.from_folder` loads them from a folder
that holds

* the LPIPS linear heads of the ``lpips`` package, ``alex.pth`` or ``vgg.pth`` (keys ``lin{k}.model.1.weight``,
  shape (1, C_k, 1, 1)), and
* the backbone's ImageNet weights as a torchvision state dict, ``alexnet*.pth`` or ``vgg16*.pth`` (keys
  ``features.{i}.weight`` / ``.bias``; classifier keys are ignored).

The backbones below use torchvision's layer indices so those state dicts load unchanged. A missing file is a
:class:`~worldwarp.errors.InputError` that names what to put where; a network is never silently left random.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from worldwarp.errors import InputError

__all__ = ["LPIPS", "LPIPSConfig", "lpips_backbone"]

# (kind, out_channels, kernel, stride, padding) in torchvision's `features` order; "M" = max pool.
_ALEX = [("C", 64, 11, 4, 2), ("R",), ("M", 3, 2), ("C", 192, 5, 1, 2), ("R",), ("M", 3, 2), ("C", 384, 3, 1, 1),
         ("R",), ("C", 256, 3, 1, 1), ("R",), ("C", 256, 3, 1, 1), ("R",)]  # fmt: skip
_ALEX_TAPS = [1, 4, 7, 9, 11]  # ReLU outputs relu1..relu5
_VGG_CH = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_VGG_TAPS = [3, 8, 15, 22, 29]  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_CHANNELS = {"alex": [64, 192, 384, 256, 256], "vgg": [64, 128, 256, 512, 512]}
_BACKBONE_GLOB = {"alex": "alexnet*.pth", "vgg": "vgg16*.pth"}


def lpips_backbone(net: str) -> tuple[nn.Sequential, list[int]]:
    """The convolutional trunk (torchvision layer indices) and the indices of the tapped ReLUs."""
    layers: list[nn.Module] = []
    if net == "alex":
        cin = 3
        for spec in _ALEX:
            if spec[0] == "C":
                _, cout, k, s, p = spec
                layers.append(nn.Conv2d(cin, cout, k, stride=s, padding=p))
                cin = cout
            elif spec[0] == "R":
                layers.append(nn.ReLU(inplace=False))
            else:
                layers.append(nn.MaxPool2d(kernel_size=spec[1], stride=spec[2]))
        return nn.Sequential(*layers), _ALEX_TAPS
    if net == "vgg":
        cin = 3
        for v in _VGG_CH:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                cin = int(v)
        return nn.Sequential(*layers), _VGG_TAPS
    raise InputError(f"unknown LPIPS network {net!r}: use 'alex' or 'vgg'")


@dataclass
class LPIPSConfig:
    """Where LPIPS weights live: ``folder`` with ``{net}.pth`` and the backbone state dict (see module doc)."""

    folder: Path
    net: str = "alex"


class LPIPS(nn.Module):
    """Learned perceptual distance between images in [0, 1]; lower is more similar.

    ``forward(pred, target)`` takes (N, 3, H, W) and returns (N,): per tapped layer, unit-normalise the
    features over channels, square their difference, weight channels by the linear head, average over space,
    then sum over layers. Inputs are mapped to [-1, 1] and standardised with the LPIPS scaling layer.
    """

    shift: Tensor
    scale: Tensor

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        self.net = net
        self.features, self.taps = lpips_backbone(net)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS[net])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def load_weights(self, backbone: dict[str, Tensor], heads: dict[str, Tensor]) -> None:
        """Load a torchvision backbone state dict and the lpips package's linear heads (strict)."""
        feats = {k[len("features.") :]: v for k, v in backbone.items() if k.startswith("features.")}
        if not feats:
            raise InputError("LPIPS backbone state dict has no 'features.*' keys (expected torchvision layout)")
        self.features.load_state_dict(feats, strict=True)
        lins = {}
        for k in range(len(self.lins)):
            key = f"lin{k}.model.1.weight"
            if key not in heads:
                raise InputError(f"LPIPS head weights lack {key!r} (expected the lpips package's {self.net}.pth)")
            lins[f"{k}.weight"] = heads[key]
        self.lins.load_state_dict(lins, strict=True)

    @classmethod
    def from_folder(cls, config: LPIPSConfig) -> LPIPS:
        """Build and load LPIPS from ``config.folder``; raises InputError naming any missing file."""
        folder = Path(config.folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: LPIPS weight folder not found")
        model = cls(config.net)  # validates the name
        head = folder / f"{config.net}.pth"
        if not head.is_file():
            raise InputError(f"{head}: LPIPS linear weights not found (copy the lpips package's {config.net}.pth)")
        backbones = sorted(folder.glob(_BACKBONE_GLOB[config.net]))
        if not backbones:
            raise InputError(
                f"{folder}: no backbone weights matching {_BACKBONE_GLOB[config.net]} (a torchvision state dict)"
            )
        try:
            heads = torch.load(head, map_location="cpu", weights_only=True)
            backbone = torch.load(backbones[0], map_location="cpu", weights_only=True)
        except Exception as e:  # corrupt or non-state-dict file
            raise InputError(f"{folder}: cannot read LPIPS weights ({type(e).__name__}: {e})") from e
        model.load_weights(backbone, heads)
        return model

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(f"LPIPS needs two (N, 3, H, W) batches, got {tuple(pred.shape)}, {tuple(target.shape)}")
        n = pred.shape[0]
        x = torch.cat([pred, target]).to(self.shift.dtype)
        x = ((2 * x - 1) - self.shift) / self.scale
        total = torch.zeros(n, dtype=x.dtype, device=x.device)
        k = 0
        for i, layer in enumerate(self.features):
            x = layer(x)
            if k < len(self.taps) and i == self.taps[k]:
                f = x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
                d = (f[:n] - f[n:]) ** 2  # (N, C_k, h, w)
                total = total + self.lins[k](d).mean(dim=(1, 2, 3))
                k += 1
                if k == len(self.taps):
                    break
        return total
