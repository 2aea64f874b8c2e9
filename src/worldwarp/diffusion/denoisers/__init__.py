"""ST-Diff denoisers behind one protocol (:class:`~worldwarp.diffusion.denoisers.base.Denoiser`).

Backends: ``tiny`` (embedded CPU model, :mod:`.tiny`) and ``wan`` (Wan2.1 ST-Diff, :mod:`.wan`). Nothing heavy is
imported here.
"""

from worldwarp.diffusion.denoisers.base import (
    NUM_TRAIN_TIMESTEPS,
    Denoiser,
    cells_to_tokens,
    classifier_free_guidance,
    token_timesteps,
    tokens_to_cells,
)

__all__ = [
    "NUM_TRAIN_TIMESTEPS",
    "Denoiser",
    "cells_to_tokens",
    "classifier_free_guidance",
    "token_timesteps",
    "tokens_to_cells",
]
