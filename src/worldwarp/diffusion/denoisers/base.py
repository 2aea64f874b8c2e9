"""The denoiser protocol every ST-Diff backend implements, and the helpers they share.

A denoiser bundles a (possibly trivial) video autoencoder and a velocity model that takes **one noise level per
token**. The sampler (:mod:`worldwarp.diffusion.sampler`) and the trainer (:mod:`worldwarp.diffusion.training`)
only talk to this protocol, so the large Wan backend (``wan.py``) and the embedded CPU model (``tiny.py``) run
through exactly the same schedule and sampling code.

Shapes (B batch, T frames, T' = 1 + (T - 1) // time_factor latent frames, H' = H / space_factor, p = patch_size):

* ``encode``: video (B, 3, T, H, W) in [0, 1] -> latents (B, C, T', H', W');
* ``decode``: latents (B, C, T', H', W') -> video (B, 3, T, H, W) in [0, 1];
* ``velocity``: latents (B, C, T', H', W'), sigmas (B, T', H'/p, W'/p) in [0, 1] -> v (B, C, T', H', W').

The velocity is the flow-matching target ``v = eps - x0`` for ``x_sigma = (1 - sigma) x0 + sigma eps``;
a token's timestep, where a model needs one, is ``sigma * num_train_timesteps`` (1000 for Wan), see
:func:`token_timesteps`. Tokens are flattened in (T', H'/p, W'/p) order, as Wan's patch embedding does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "Denoiser",
    "NUM_TRAIN_TIMESTEPS",
    "cells_to_tokens",
    "tokens_to_cells",
    "token_timesteps",
    "classifier_free_guidance",
]

# Flow-matching models (Wan, SD3) are trained with timestep = sigma * 1000.
NUM_TRAIN_TIMESTEPS = 1000


@runtime_checkable
class Denoiser(Protocol):
    """A video autoencoder plus a velocity model conditioned on per-token noise levels.

    Attributes:
        time_factor: frames per latent frame after the first (Wan: 4; the first frame is encoded on its own).
        space_factor: pixels per latent cell along each image axis (Wan: 8).
        latent_channels: C of the latents (Wan 2.1: 16).
        patch_size: latent cells per token along each spatial axis (Wan: 2). The sampler guarantees that
            noise levels are uniform within a patch.
    """

    time_factor: int
    space_factor: int
    latent_channels: int
    patch_size: int

    def encode(self, video: Tensor) -> Tensor:
        """Latents (B, C, T', H', W') of a video (B, 3, T, H, W) in [0, 1]."""
        ...

    def decode(self, latents: Tensor) -> Tensor:
        """Video (B, 3, T, H, W) in [0, 1] of latents (B, C, T', H', W')."""
        ...

    def encode_prompt(self, prompt: str, negative: str = "") -> Any:
        """An opaque conditioning object for :meth:`velocity` (positive and negative prompt)."""
        ...

    def velocity(self, latents: Tensor, sigmas: Tensor, cond: Any, guidance_scale: float = 1.0) -> Tensor:
        """Predicted velocity (B, C, T', H', W') for per-token levels ``sigmas`` (B, T', H'/p, W'/p) in [0, 1].

        With ``guidance_scale != 1`` the result is classifier-free guided against the negative conditioning
        (see :func:`classifier_free_guidance`); with ``guidance_scale == 1`` no unconditional pass is run.
        """
        ...


def cells_to_tokens(sigmas: Tensor, patch_size: int, atol: float = 0.0) -> Tensor:
    """Per-token levels (B, T', H'/p, W'/p) from per-latent-cell levels (B, T', H', W').

    A token's level is its cells' level; they must agree within a patch (to ``atol``), otherwise this raises
    ``ValueError`` (a sampler bug: masks are reduced at patch resolution precisely so that this holds).
    """
    p = int(patch_size)
    if sigmas.ndim != 4:
        raise ValueError(f"sigmas must have shape (B, T', H', W'), got {tuple(sigmas.shape)}")
    B, T, H, W = sigmas.shape
    if H % p or W % p:
        raise ValueError(f"latent size {H}x{W} is not divisible by the patch size {p}")
    if p == 1:
        return sigmas
    patches = sigmas.reshape(B, T, H // p, p, W // p, p)
    hi = patches.amax(dim=(3, 5))
    lo = patches.amin(dim=(3, 5))
    if (hi - lo).abs().max() > atol:
        raise ValueError("noise levels are not uniform within a latent patch")
    return lo


def tokens_to_cells(token_sigmas: Tensor, patch_size: int) -> Tensor:
    """Per-cell levels (B, T', H', W') from per-token levels (B, T', H'/p, W'/p) (nearest upsampling)."""
    p = int(patch_size)
    if p == 1:
        return token_sigmas
    return token_sigmas.repeat_interleave(p, dim=-2).repeat_interleave(p, dim=-1)


def token_timesteps(token_sigmas: Tensor, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> Tensor:
    """Flattened per-token timesteps (B, T' * H'/p * W'/p) = sigma * num_train_timesteps, in (t, h, w) order."""
    return token_sigmas.flatten(1) * num_train_timesteps


def classifier_free_guidance(
    predict: Callable[[Tensor, Tensor, Any], Tensor],
    latents: Tensor,
    sigmas: Tensor,
    positive: Any,
    negative: Any,
    guidance_scale: float,
    batched: bool = True,
) -> Tensor:
    """``v_neg + g (v_pos - v_neg)``; only ``predict(latents, sigmas, positive)`` when ``g == 1``.

    ``predict(latents, sigmas, embedding)`` is the raw model call. With ``batched`` the two passes are run as one
    batch of 2B, which requires ``positive``/``negative`` to be tensors of equal shape (concatenated on dim 0);
    otherwise the model is called twice.
    """
    if guidance_scale == 1.0 or negative is None:
        return predict(latents, sigmas, positive)
    if batched and isinstance(positive, Tensor) and isinstance(negative, Tensor) and positive.shape == negative.shape:
        v = predict(torch.cat([latents, latents]), torch.cat([sigmas, sigmas]), torch.cat([positive, negative]))
        v_pos, v_neg = v.chunk(2)
    else:
        v_pos = predict(latents, sigmas, positive)
        v_neg = predict(latents, sigmas, negative)
    return v_neg + guidance_scale * (v_pos - v_neg)
