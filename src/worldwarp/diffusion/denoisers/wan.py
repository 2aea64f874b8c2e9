"""The ``wan`` ST-Diff backend: Wan2.1-T2V-1.3B through diffusers, with one noise level per token.

Parts (all diffusers / transformers classes, built from a ``Wan2.1-T2V-1.3B-Diffusers`` folder or hub id):

* ``WanTransformer3DModel`` with the released WorldWarp ST-Diff weights. Its forward accepts a timestep of shape
  (B, seq_len) (diffusers >= 0.35): one timestep per token, tokens flattened in (T', H'/2, W'/2) order exactly as
  its patch embedding flattens them. Token timestep = sigma * 1000, as diffusers' ``FlowMatchEulerDiscreteScheduler``
  maps sigmas to timesteps (float, not rounded). The output is the flow-matching velocity ``eps - x0``.
* ``AutoencoderKLWan``: 8x space, 4x time with the first frame on its own (T' = 1 + (T - 1) / 4). Pixels go in as
  [-1, 1]; latents are normalised per channel with the config's ``latents_mean`` / ``latents_std`` exactly as
  the Wan pipelines do (``(z - mean) / std``); encoding takes the posterior mode (deterministic).
* umT5 (``UMT5EncoderModel`` + tokenizer): prompts are cleaned (ftfy when installed, HTML unescape, whitespace),
  padded to ``max_sequence_length`` (512) and the embeddings after the prompt's last token are zeroed, as
  ``WanPipeline`` does. Embeddings can be cached on disk (:class:`~.wan_loading.PromptEmbeddingCache`); the text
  encoder is loaded only on a cache miss, and can be switched off entirely (``use_text_encoder=False``).

Classifier-free guidance is ``v_neg + g (v_pos - v_neg)`` with a negative prompt (default: Wan's standard
Chinese negative prompt, :data:`WAN_NEGATIVE_PROMPT_ZH`; an English version is :data:`WAN_NEGATIVE_PROMPT_EN`).

Memory (see docs/wan.md): ``dtype`` bf16 on CUDA; ``offload="model"`` keeps the text encoder and the VAE on the
CPU between uses; ``offload="sequential"`` streams every sub-model layer by layer (accelerate); ``vae_tiling``
encodes/decodes in spatial tiles.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from worldwarp.diffusion.denoisers.base import classifier_free_guidance, token_timesteps
from worldwarp.diffusion.denoisers.wan_loading import (
    PromptEmbeddingCache,
    cast_parameters,
    check_model_folder,
    load_component,
    load_stdiff_transformer,
    text_encoder_id,
)
from worldwarp.errors import InputError

__all__ = [
    "RELEASE_NEGATIVE_PROMPT",
    "WAN_NEGATIVE_PROMPT_ZH",
    "WAN_NEGATIVE_PROMPT_EN",
    "OFFLOAD_MODES",
    "WanConfig",
    "WanConditioning",
    "WanDenoiser",
    "clean_prompt",
]

# Wan2.1's standard negative prompt (the one its official sampling scripts use).
WAN_NEGATIVE_PROMPT_ZH = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)
# Its English translation (as in diffusers' Wan examples).
WAN_NEGATIVE_PROMPT_EN = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, overall "
    "gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly drawn hands, "
    "poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy background, "
    "three legs, many people in the background, walking backwards"
)
# The negative prompt of the authors' release (its demo's default; Wan's English list with people and animals
# excluded and a static camera discouraged), the default of the Wan presets (PipelineConfig.release / paper).
RELEASE_NEGATIVE_PROMPT = (
    "Person, people, pet, animals. Bright tones, static camera, overexposed, static, blurred details, subtitles, "
    "style, works, paintings, images, static, overall gray, worst quality, low quality, JPEG compression residue, "
    "ugly, incomplete, extra fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, "
    "fused fingers, still picture, messy background, three legs, many people in the background, walking "
    "backwards, unrealistic."
)

OFFLOAD_MODES = ("none", "model", "sequential")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16", "float": "float32"}


def _dtype_from_name(name: str, field: str) -> torch.dtype:
    key = _DTYPE_ALIASES.get(name.lower(), name.lower())
    if key not in _DTYPES:
        raise InputError(f"WanConfig.{field}: unknown dtype {name!r}; expected one of {', '.join(_DTYPES)}")
    return _DTYPES[key]


@dataclass
class WanConfig:
    """How to build and run the Wan ST-Diff denoiser.

    Attributes:
        model: local ``Wan2.1-T2V-1.3B-Diffusers`` folder (sub-folders transformer/, vae/, text_encoder/,
            tokenizer/) or its hub id.
        stdiff_weights: the WorldWarp release's ST-Diff transformer state dict (.safetensors/.pt/.pth/.bin/.ckpt,
            loaded strictly) or a diffusers transformer folder; None runs the base Wan transformer (not trained
            for per-token noise levels; for ablations only).
        trust_checkpoint: allow a torch file that only loads as a full pickle (``weights_only=False``, which runs
            code from the file; a warning is issued); otherwise such a file is an :class:`InputError`.
        dtype: transformer and text-encoder dtype ("bfloat16", "float16", "float32"); None = bfloat16 on CUDA,
            float32 elsewhere.
        vae_dtype: VAE dtype (Wan recommends float32).
        device: execution device ("cuda", "cuda:1", "cpu", ...); None = "cuda" when available, else "cpu".
        offload: "none" (everything on ``device``), "model" (text encoder and VAE wait on the CPU and visit the
            device only while used), "sequential" (every sub-model streamed to the device layer by layer).
        vae_tiling: encode/decode in overlapping spatial tiles (lower peak memory at high resolution).
        prompt_cache_dir: folder for prompt embeddings (keyed by a hash of prompt + encoder id + max length);
            None disables the cache.
        use_text_encoder: False never loads umT5: every prompt (and the negative prompt) must be in the cache.
        max_sequence_length: umT5 token budget (Wan: 512).
        negative_prompt: negative prompt used when :meth:`WanDenoiser.encode_prompt` gets none.
        batch_cfg: run the conditional and unconditional passes as one batch of 2B (faster, more memory).
        local_files_only: never download (also implied by ``HF_HUB_OFFLINE=1``).
        revision: hub revision of ``model``.
    """

    model: str = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    stdiff_weights: str | None = None
    trust_checkpoint: bool = False
    dtype: str | None = None
    vae_dtype: str = "float32"
    device: str | None = None
    offload: str = "none"
    vae_tiling: bool = False
    prompt_cache_dir: str | None = None
    use_text_encoder: bool = True
    max_sequence_length: int = 512
    negative_prompt: str = WAN_NEGATIVE_PROMPT_ZH
    batch_cfg: bool = False
    local_files_only: bool = False
    revision: str | None = None

    def __post_init__(self) -> None:
        if self.offload not in OFFLOAD_MODES:
            raise InputError(f"WanConfig.offload: unknown mode {self.offload!r}; expected one of {OFFLOAD_MODES}")
        if int(self.max_sequence_length) < 1:
            raise InputError(f"WanConfig.max_sequence_length must be >= 1, got {self.max_sequence_length}")
        if self.dtype is not None:
            _dtype_from_name(self.dtype, "dtype")
        _dtype_from_name(self.vae_dtype, "vae_dtype")

    def resolved_device(self) -> torch.device:
        """The execution device (``device``, or CUDA when available, else CPU)."""
        from worldwarp.devices import resolve_device

        return resolve_device(self.device)

    def resolved_dtype(self) -> torch.dtype:
        """Transformer / text-encoder dtype (``dtype``, or bf16 on CUDA, float32 elsewhere)."""
        if self.dtype is not None:
            return _dtype_from_name(self.dtype, "dtype")
        return torch.bfloat16 if self.resolved_device().type == "cuda" else torch.float32

    def resolved_vae_dtype(self) -> torch.dtype:
        """VAE dtype."""
        return _dtype_from_name(self.vae_dtype, "vae_dtype")


@dataclass
class WanConditioning:
    """Text conditioning for :meth:`WanDenoiser.velocity`.

    Attributes:
        positive: prompt embeddings (1, L, D) (zeros after the prompt's last token).
        negative: negative-prompt embeddings (1, L, D), or None (then no guidance is applied).
    """

    positive: Tensor
    negative: Tensor | None = None


def clean_prompt(text: str) -> str:
    """Wan's prompt clean-up: ftfy (when installed), double HTML unescape, collapsed whitespace."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


class WanDenoiser:
    """Wan2.1 ST-Diff behind the :class:`~worldwarp.diffusion.denoisers.base.Denoiser` protocol.

    Build it with :meth:`from_config` (real weights) or directly from modules (tests, benchmarks). Inputs may live
    on any device and dtype; outputs come back on the input's device and dtype, while the models run on
    ``config.device`` in ``config.dtype``.

    Attributes:
        time_factor: 4 (from the VAE config).
        space_factor: 8 (from the VAE config).
        latent_channels: 16 for Wan2.1 (the VAE's ``z_dim``).
        patch_size: 2 (the transformer's spatial patch).
        text_encoder_calls: how many prompts went through umT5 (cache hits do not count).
    """

    def __init__(
        self,
        transformer: Any,
        vae: Any,
        *,
        text_encoder: Any | None = None,
        tokenizer: Any | None = None,
        config: WanConfig | None = None,
    ) -> None:
        """Wrap loaded modules (a ``WanTransformer3DModel``, an ``AutoencoderKLWan``, optionally umT5 + tokenizer).

        Without a text encoder, one is loaded from ``config.model`` on the first prompt-cache miss (unless
        ``config.use_text_encoder`` is False). Modules are moved to the configured device/dtype/offload here.
        """
        self.config = config if config is not None else WanConfig()
        # frozen, so sampling builds no autograd graph; a trainer unfreezes it with transformer.requires_grad_(True)
        self.transformer = transformer.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False)
        self.text_encoder = None if text_encoder is None else text_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.text_encoder_calls = 0
        self._embed_memo: dict[str, Tensor] = {}  # cleaned prompt -> embeddings, the last few prompts of this run

        p_t, p_h, p_w = (int(x) for x in transformer.config.patch_size)
        if p_t != 1 or p_h != p_w:
            raise ValueError(f"unsupported transformer patch size {(p_t, p_h, p_w)}; expected (1, p, p)")
        z_dim = int(vae.config.z_dim)
        if int(transformer.config.in_channels) != z_dim or int(transformer.config.out_channels or z_dim) != z_dim:
            raise ValueError(
                f"transformer channels ({transformer.config.in_channels} in, {transformer.config.out_channels} out) "
                f"do not match the VAE's z_dim {z_dim}"
            )
        self.time_factor = int(vae.config.scale_factor_temporal or 4)
        self.space_factor = int(vae.config.scale_factor_spatial or 8)
        self.latent_channels = z_dim
        self.patch_size = p_h

        self.device = self.config.resolved_device()
        self.dtype = self.config.resolved_dtype()
        self.vae_dtype = self.config.resolved_vae_dtype()
        # latent normalisation (1, C, 1, 1, 1), as the Wan pipelines apply it
        self._latents_mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32).view(1, z_dim, 1, 1, 1)
        self._latents_std = torch.tensor(vae.config.latents_std, dtype=torch.float32).view(1, z_dim, 1, 1, 1)

        self.prompt_cache: PromptEmbeddingCache | None = None
        if self.config.prompt_cache_dir is not None:
            self.prompt_cache = PromptEmbeddingCache(
                self.config.prompt_cache_dir, text_encoder_id(self.config.model), self.config.max_sequence_length
            )
        if self.config.vae_tiling:
            self.vae.enable_tiling()
        self.vae.enable_slicing()  # decode a batch one video at a time

        cast_parameters(self.transformer, self.dtype)  # norms / time embedder stay float32, as diffusers loads them
        cast_parameters(self.vae, self.vae_dtype)
        self._place(self.transformer, resident=True)
        self._place(self.vae, resident=False)
        if self.text_encoder is not None:
            cast_parameters(self.text_encoder, self.dtype)
            self._place(self.text_encoder, resident=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: WanConfig) -> WanDenoiser:
        """Load the transformer (with the ST-Diff weights) and the VAE; the text encoder is loaded lazily.

        Raises:
            InputError: missing model folder / hub id, missing or mismatching ST-Diff weights.
        """
        dtype = config.resolved_dtype()
        check_model_folder(config.model, ("transformer", "vae"))  # fail before loading anything large
        transformer = load_stdiff_transformer(
            config.model,
            config.stdiff_weights,
            torch_dtype=dtype,
            trust_pickle=config.trust_checkpoint,
            local_files_only=config.local_files_only,
            revision=config.revision,
        )
        vae = load_component(
            config.model,
            "vae",
            torch_dtype=config.resolved_vae_dtype(),
            local_files_only=config.local_files_only,
            revision=config.revision,
        )
        return cls(transformer, vae, config=config)

    def _place(self, module: torch.nn.Module, *, resident: bool) -> None:
        """Put a module where the offload mode wants it between uses."""
        mode = self.config.offload
        if mode == "sequential":
            if not getattr(module, "_worldwarp_sequential_offload", False):
                from accelerate import cpu_offload

                cpu_offload(module.to("cpu"), execution_device=self.device, offload_buffers=True)
                module._worldwarp_sequential_offload = True  # type: ignore[attr-defined]
        elif mode == "model" and not resident:
            module.to("cpu")
        else:
            module.to(self.device)

    @contextmanager
    def _visiting(self, module: torch.nn.Module) -> Iterator[None]:
        """With ``offload="model"``: the module sits on the device inside the block and on the CPU after it."""
        if self.config.offload != "model" or self.device.type == "cpu":
            yield
            return
        module.to(self.device)
        try:
            yield
        finally:
            module.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    # ------------------------------------------------------------------ VAE
    def _check_video_size(self, T: int, H: int, W: int) -> None:
        if T < 1 or (T - 1) % self.time_factor:
            raise ValueError(f"frame count {T} must be 1 + a multiple of {self.time_factor}")
        if H % self.space_factor or W % self.space_factor:
            raise ValueError(f"frame size {H}x{W} must be a multiple of {self.space_factor}")

    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """Normalised latents (B, C, 1 + (T-1)/4, H/8, W/8) of a video (B, 3, T, H, W) in [0, 1]."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"video must have shape (B, 3, T, H, W), got {tuple(video.shape)}")
        self._check_video_size(*video.shape[2:])
        with self._visiting(self.vae):
            x = video.to(self.device, self.vae_dtype) * 2.0 - 1.0  # (B, 3, T, H, W) in [-1, 1]
            z = self.vae.encode(x).latent_dist.mode()  # (B, C, T', H', W')
            mean = self._latents_mean.to(z.device, z.dtype)
            std = self._latents_std.to(z.device, z.dtype)
            z = (z - mean) / std
        return z.to(video.device, video.dtype)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Video (B, 3, 1 + 4 (T'-1), 8 H', 8 W') in [0, 1] of normalised latents (B, C, T', H', W')."""
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"latents must have shape (B, {self.latent_channels}, T', H', W'), got {tuple(latents.shape)}"
            )
        with self._visiting(self.vae):
            z = latents.to(self.device, self.vae_dtype)
            z = z * self._latents_std.to(z.device, z.dtype) + self._latents_mean.to(z.device, z.dtype)
            x = self.vae.decode(z).sample  # (B, 3, T, H, W) in [-1, 1]
            video = ((x.clamp(-1.0, 1.0) + 1.0) / 2.0).float()
        return video.to(latents.device, latents.dtype)

    # ------------------------------------------------------------------ text
    def _load_text_encoder(self) -> None:
        self.tokenizer = load_component(
            self.config.model, "tokenizer", local_files_only=self.config.local_files_only, revision=self.config.revision
        )
        encoder = load_component(
            self.config.model,
            "text_encoder",
            torch_dtype=self.dtype,
            local_files_only=self.config.local_files_only,
            revision=self.config.revision,
        )
        self.text_encoder = encoder.eval().requires_grad_(False)
        self._place(self.text_encoder, resident=False)

    @torch.no_grad()
    def embed_prompt(self, prompt: str) -> Tensor:
        """umT5 embeddings (1, max_sequence_length, D) float32 on the CPU, from the cache when possible.

        Raises:
            InputError: cache miss while ``use_text_encoder`` is False.
        """
        text = clean_prompt(prompt)
        if text in self._embed_memo:
            return self._embed_memo[text]
        embeds = self._embed_uncached(text)
        if len(self._embed_memo) >= 16:
            self._embed_memo.pop(next(iter(self._embed_memo)))
        self._embed_memo[text] = embeds
        return embeds

    def _embed_uncached(self, text: str) -> Tensor:
        if self.prompt_cache is not None:
            cached = self.prompt_cache.get(text)
            if cached is not None:
                return cached.float()
        if self.text_encoder is None or self.tokenizer is None:
            if not self.config.use_text_encoder:
                where = self.config.prompt_cache_dir or "(no prompt_cache_dir set)"
                raise InputError(
                    f"prompt {text[:60]!r} is not in the prompt-embedding cache {where} and the text encoder is "
                    "disabled; run once with the text encoder to fill the cache"
                )
            self._load_text_encoder()
        L = int(self.config.max_sequence_length)
        tokens = self.tokenizer(
            [text],
            padding="max_length",
            max_length=L,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        with self._visiting(self.text_encoder):
            ids = tokens.input_ids.to(self.device)  # (1, L)
            mask = tokens.attention_mask.to(self.device)  # (1, L)
            hidden = self.text_encoder(ids, mask).last_hidden_state  # (1, L, D)
            # WanPipeline keeps the embeddings of the real tokens and zero-pads the rest
            embeds = (hidden.float() * mask[..., None].float()).cpu()
        self.text_encoder_calls += 1
        if self.prompt_cache is not None:
            self.prompt_cache.put(text, embeds)
        return embeds

    def encode_prompt(self, prompt: str, negative: str | None = None) -> WanConditioning:
        """Conditioning for ``prompt``; ``negative=None`` uses ``config.negative_prompt`` ("" is encoded as is)."""
        negative = self.config.negative_prompt if negative is None else negative
        positive = self.embed_prompt(prompt).to(self.device, self.dtype)
        neg = self.embed_prompt(negative).to(self.device, self.dtype)
        return WanConditioning(positive=positive, negative=neg)

    # ------------------------------------------------------------------ transformer
    def _predict(self, latents: Tensor, timesteps: Tensor, embeds: Tensor) -> Tensor:
        """One transformer pass: latents (B, C, T', H', W'), timesteps (B, L_tok), embeds (B, L, D) -> v float32."""
        v = self.transformer(
            hidden_states=latents, timestep=timesteps, encoder_hidden_states=embeds, return_dict=False
        )[0]
        return v.float()

    def velocity(self, latents: Tensor, sigmas: Tensor, cond: WanConditioning, guidance_scale: float = 1.0) -> Tensor:
        """Flow-matching velocity (B, C, T', H', W') for per-token noise levels.

        Args:
            latents: (B, C, T', H', W') normalised latents at their current noise levels.
            sigmas: (B, T', H'/2, W'/2) per-token levels in [0, 1]; token timestep = 1000 sigma.
            cond: from :meth:`encode_prompt` (its (1, L, D) embeddings are broadcast over the batch).
            guidance_scale: CFG scale; 1 (or no negative) runs a single conditional pass.

        Returns:
            v = eps - x0 estimate, on ``latents``' device and dtype.
        """
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"latents must have shape (B, {self.latent_channels}, T', H', W'), got {tuple(latents.shape)}"
            )
        B, _, T, H, W = latents.shape
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f"latent size {H}x{W} is not divisible by the patch size {p}")
        if tuple(sigmas.shape) != (B, T, H // p, W // p):
            raise ValueError(
                f"sigmas must have shape {(B, T, H // p, W // p)} (B, T', H'/p, W'/p), got {tuple(sigmas.shape)}"
            )
        x = latents.to(self.device, self.dtype)
        timesteps = token_timesteps(sigmas.to(self.device, torch.float32))  # (B, T' H'/p W'/p)
        positive = cond.positive.to(self.device, self.dtype).expand(B, -1, -1)
        negative = None if cond.negative is None else cond.negative.to(self.device, self.dtype).expand(B, -1, -1)
        v = classifier_free_guidance(
            self._predict, x, timesteps, positive, negative, float(guidance_scale), batched=self.config.batch_cfg
        )
        return v.to(latents.device, latents.dtype)
