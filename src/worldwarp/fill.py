"""Step 5 of the chunk loop: fill the holes of the warped prior (and revise its valid part), behind one interface.

* :class:`STDiffFill` - the method: encode the history and the warped prior, reduce the pixel mask to the latent
  grid (:mod:`worldwarp.diffusion.latent_grid`), sample with per-token start levels
  (:func:`worldwarp.diffusion.sampler.sample`) and decode;
* :class:`InpaintFill` - the classical baseline: OpenCV inpainting of the prior's holes, no model, no revision;
* :class:`PushPullFill` - the same with push-pull interpolation (no OpenCV): the guess ``hole_init="push_pull"``
  models start their holes from.

Both take the chunk's history frames and its :class:`~worldwarp.warp.WarpResult` and return the new frames
(n, 3, H, W) in [0, 1]. :func:`fill_for` builds the one a :class:`~worldwarp.pipeline.PipelineConfig` names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from worldwarp.errors import InputError
from worldwarp.warp import WarpResult

if TYPE_CHECKING:
    from worldwarp.diffusion.denoisers.base import Denoiser
    from worldwarp.diffusion.sampler import SamplerConfig
    from worldwarp.pipeline import PipelineConfig

__all__ = ["FillStrategy", "InpaintFill", "PushPullFill", "STDiffFill", "SamplerInputs", "fill_for", "inpaint_holes"]


@runtime_checkable
class FillStrategy(Protocol):
    """Anything that turns a chunk's history and warped prior into its new frames.

    Attributes:
        uses_prompt: whether :meth:`conditioning` needs a text prompt (the pipeline captions / encodes one only
            then, and times it as the chunk's ``prompt`` stage).
    """

    uses_prompt: bool

    def conditioning(self, prompt: str) -> Any:
        """The conditioning :meth:`fill` takes for ``prompt`` (None when the strategy takes none)."""
        ...

    def fill(self, history: Tensor, warp: WarpResult, *, seed: int, cond: Any = None) -> Tensor:
        """New frames (n, 3, H, W) in [0, 1] from the history frames (V, 3, H, W) and the warp of the n new ones;
        ``seed`` seeds every random draw."""
        ...


def inpaint_holes(rgb: Tensor, mask: Tensor, radius: int = 3, algorithm: str = "telea") -> Tensor:
    """Classical hole filling: OpenCV inpainting (``"telea"`` or ``"ns"``) of frames (N, 3, H, W) where ``mask``
    (N, H, W) is False, frame by frame, no revision of the rest. A frame with no valid pixel becomes mid-grey."""
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - depends on the install
        raise InputError("the inpaint baseline needs OpenCV: pip install 'worldwarp[eval]'") from e
    import numpy as np

    if algorithm not in ("telea", "ns"):
        raise InputError(f"inpaint algorithm must be 'telea' or 'ns', got {algorithm!r}")
    flag = cv2.INPAINT_TELEA if algorithm == "telea" else cv2.INPAINT_NS
    out = []
    for i in range(rgb.shape[0]):
        img = np.ascontiguousarray((rgb[i].permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8))
        holes = np.ascontiguousarray((~mask[i]).cpu().numpy().astype(np.uint8) * 255)
        if holes.all():  # nothing is visible: cv2 has nothing to propagate
            filled = np.full_like(img, 127)
        else:
            filled = cv2.inpaint(img, holes, radius, flag) if holes.any() else img
        out.append(torch.from_numpy(filled).permute(2, 0, 1).to(rgb) / 255)
    return torch.stack(out)


@dataclass
class InpaintFill:
    """OpenCV inpainting of the warped prior's holes (``radius`` pixels, ``"telea"`` or ``"ns"``)."""

    radius: int = 3
    algorithm: str = "telea"
    uses_prompt: bool = False

    def conditioning(self, prompt: str) -> None:
        return None

    def fill(self, history: Tensor, warp: WarpResult, *, seed: int, cond: Any = None) -> Tensor:
        return inpaint_holes(warp.rgb, warp.mask, self.radius, self.algorithm)


@dataclass
class PushPullFill:
    """Push-pull interpolation of the warped prior's holes (:mod:`worldwarp.diffusion.hole_guess`), no revision:
    the guess that ``hole_init="push_pull"`` models start from; needs neither OpenCV nor a model."""

    uses_prompt: bool = False

    def conditioning(self, prompt: str) -> None:
        return None

    def fill(self, history: Tensor, warp: WarpResult, *, seed: int, cond: Any = None) -> Tensor:
        from worldwarp.diffusion.hole_guess import push_pull_fill

        return push_pull_fill(warp.rgb, warp.mask).clamp(0, 1)


@dataclass
class SamplerInputs:
    """What a chunk hands the sampler (batch of one).

    Attributes:
        latents: (1, C, T', H', W') encoded video: the history frames, then the warped prior (zero in its holes).
        latent_mask: (1, T', H', W') bool, True where the warped prior is valid on the latent grid.
        history: (1, T') bool, True for the latent frames that hold only history frames (kept clean).
    """

    latents: Tensor
    latent_mask: Tensor
    history: Tensor


class STDiffFill:
    """ST-Diff: fill the holes and revise the warped regions with a denoiser and the per-token sampler.

    With strength 0 the warped prior is kept as it is: besides the warped latent cells (level 0 throughout), the
    valid pixels of cells that the mask reduction made holes are copied back from the warp after decoding, so only
    the pixels the warp did not reach are generated (:meth:`kept_pixels`; under an ablation's noise mode, valid
    cells that the mode treats as holes are generated too).

    Args:
        denoiser: any :class:`~worldwarp.diffusion.denoisers.base.Denoiser` (on the device the frames are on).
        sampler: the sampler's settings (strength, steps, latent-grid rules, noise mode).
        negative_prompt: encoded with every prompt (classifier-free guidance).
        progress: show the sampler's progress bar.
    """

    uses_prompt = True

    def __init__(
        self, denoiser: Denoiser, sampler: SamplerConfig, negative_prompt: str = "", progress: bool = False
    ) -> None:
        self.denoiser = denoiser
        self.sampler = sampler
        self.negative_prompt = negative_prompt
        self.progress = progress
        self._conds: dict[str, Any] = {}  # prompt -> conditioning (the negative prompt is fixed)

    def conditioning(self, prompt: str) -> Any:
        """The denoiser's encoding of ``prompt`` against the negative prompt (the last 8 prompts are kept)."""
        if prompt not in self._conds:
            if len(self._conds) >= 8:
                self._conds.pop(next(iter(self._conds)))
            self._conds[prompt] = self.denoiser.encode_prompt(prompt, self.negative_prompt)
        return self._conds[prompt]

    def sampler_inputs(self, history: Tensor, warp: WarpResult) -> SamplerInputs:
        """Encode history + prior and put the pixel mask on the latent grid (history frames count as valid)."""
        from worldwarp.diffusion.latent_grid import history_latent_frames, pixel_mask_to_cells

        den = self.denoiser
        n_hist, _, h, w = history.shape
        prior_rgb = torch.where(warp.mask[:, None], warp.rgb, torch.zeros_like(warp.rgb))
        video = torch.cat([history, prior_rgb])  # (T, 3, H, W)
        pix_mask = torch.cat([torch.ones(n_hist, h, w, dtype=torch.bool, device=video.device), warp.mask])
        latents = den.encode(video.permute(1, 0, 2, 3)[None])  # (1, C, T', H', W')
        cells = pixel_mask_to_cells(pix_mask, den.time_factor, den.space_factor, self.sampler.mask_reduction)
        hist = history_latent_frames(n_hist, latents.shape[2], den.time_factor, video.device)
        return SamplerInputs(latents, cells[None], hist[None])

    def warped_cells(self, inputs: SamplerInputs) -> Tensor:
        """(1, T', H', W') bool: the latent cells that start at the warped level (not history), as the sampler
        decides with its patch rule and noise mode (:func:`~worldwarp.diffusion.latent_grid.warp_token_mask`)."""
        from worldwarp.diffusion.denoisers.base import tokens_to_cells
        from worldwarp.diffusion.latent_grid import reduce_mask_to_patches, warp_token_mask

        mode = self.sampler.noise_mode
        if self.sampler.patch_levels == "strict":
            p = self.denoiser.patch_size
            tokens = warp_token_mask(reduce_mask_to_patches(inputs.latent_mask, p), inputs.history, mode)
            warped = tokens_to_cells(tokens, p)
        else:
            warped = warp_token_mask(inputs.latent_mask, inputs.history, mode)
        return warped & ~inputs.history[:, :, None, None]

    def kept_pixels(self, warp: WarpResult, inputs: SamplerInputs, n_history: int) -> Tensor:
        """(n, H, W) bool: the valid warped pixels the model may see and, at strength 0, that are copied back: all
        of ``warp.mask`` except the pixels of valid cells the noise mode treats as holes (its ablations)."""
        den = self.denoiser
        cells = inputs.latent_mask & ~self.warped_cells(inputs) & ~inputs.history[:, :, None, None]  # dropped
        sf, tf = den.space_factor, den.time_factor
        n, h, w = warp.mask.shape
        frames = torch.arange(n_history, n_history + n, device=cells.device)
        latent = torch.where(frames == 0, 0, torch.div(frames - 1, tf, rounding_mode="floor") + 1)
        dropped = cells[0, latent].repeat_interleave(sf, dim=-2).repeat_interleave(sf, dim=-1)  # (n, H, W)
        return warp.mask & ~dropped.to(warp.mask.device)

    def hole_start(
        self, history: Tensor, warp: WarpResult, inputs: SamplerInputs, generator: torch.Generator
    ) -> Tensor | None:
        """The sampler's initial ``latents`` for a denoiser with ``hole_init="push_pull"``: at the cells that start
        as holes, the encoded push-pull guess (:mod:`~worldwarp.diffusion.hole_guess`) of the :meth:`kept_pixels`;
        noise from ``generator`` elsewhere (drawn as the sampler would draw it), except at the warped cells of
        a ``revise_init="prior"`` denoiser, which start from the prior itself. None (the sampler draws pure noise)
        for other denoisers."""
        if getattr(self.denoiser, "hole_init", "noise") != "push_pull":
            return None
        from worldwarp.diffusion.hole_guess import push_pull_fill

        lat = inputs.latents
        noise = torch.randn(lat.shape, generator=generator, device=lat.device, dtype=torch.float32).to(lat.dtype)
        guess = push_pull_fill(warp.rgb.to(history.dtype), self.kept_pixels(warp, inputs, history.shape[0]))
        video = torch.cat([history, guess])  # (T, 3, H, W)
        z_guess = self.denoiser.encode(video.permute(1, 0, 2, 3)[None]).to(lat.dtype)  # (1, C, T', H', W')
        warped = self.warped_cells(inputs)  # (1, T', H', W')
        holes = ~warped & ~inputs.history[:, :, None, None]
        if getattr(self.denoiser, "revise_init", "noise") == "prior":
            # the warped cells start from the prior itself: (1 - sigma) prior + sigma prior = prior
            noise = torch.where(warped[:, None], lat, noise)
        return torch.where(holes[:, None], z_guess, noise)

    def fill(self, history: Tensor, warp: WarpResult, *, seed: int, cond: Any = None) -> Tensor:
        from worldwarp.diffusion.sampler import sample

        n_hist = history.shape[0]
        with torch.no_grad():
            inputs = self.sampler_inputs(history, warp)
            generator = torch.Generator(device=inputs.latents.device).manual_seed(seed)
            start = self.hole_start(history, warp, inputs, generator)
            out = sample(
                self.denoiser,
                inputs.latents,
                inputs.latent_mask,
                inputs.history,
                self.sampler,
                generator=generator,
                cond=cond,
                progress=self.progress,
                latents=start,
            )
            decoded = self.denoiser.decode(out)[0].permute(1, 0, 2, 3)  # (T, 3, H, W)
        assert decoded.shape[0] == n_hist + warp.rgb.shape[0]
        new = decoded[n_hist:].to(history.dtype).clamp(0, 1)
        if self.sampler.strength == 0:  # the warp is not revised: its valid pixels in partly-hole cells stay too
            kept = self.kept_pixels(warp, inputs, n_hist)
            new = torch.where(kept[:, None], warp.rgb.to(new.dtype).clamp(0, 1), new)
        return new


def fill_for(config: PipelineConfig, denoiser: Denoiser | None) -> FillStrategy:
    """The fill ``config.fill`` names: :class:`STDiffFill` with ``denoiser`` and the config's sampler, or
    :class:`InpaintFill` (which needs no denoiser)."""
    if config.fill == "inpaint":
        return InpaintFill()
    if config.fill == "push_pull":
        return PushPullFill()
    if denoiser is None:
        raise InputError("the diffusion fill needs a denoiser (or use fill='inpaint')")
    return STDiffFill(denoiser, config.sampler, config.negative_prompt, config.progress)
