"""The identity of a model's weights: one content digest of every parameter and buffer.

Results files and run records name the model by :func:`weights_digest` rather than by the folder it was read
from, so a moved checkpoint is still recognised and a retrained one is not mistaken for the old.
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["weights_digest"]


def weights_digest(module: torch.nn.Module) -> str:
    """First 16 hex digits of the SHA-256 of a module's state dict: every entry's name, shape, dtype and bytes, in
    name order (so equal weights in another object give the same digest; one changed value or dtype does not)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]
