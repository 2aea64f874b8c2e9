"""Per-chunk prompts: caption a chunk's input frames with an image-text-to-text model (as the release does).

The authors' release captions every chunk's input video with Qwen2.5-VL-7B-Instruct and uses the caption as the
chunk's prompt (its negative prompt is fixed). :class:`Captioner` does the same with any transformers model that
``AutoModelForImageTextToText`` and ``AutoProcessor`` load (a local folder or a hub id): the frames go in as a
video when the processor has a video processor (Qwen2-VL / Qwen2.5-VL with torchvision installed), otherwise as a
list of images, after a system message with :attr:`CaptionConfig.instruction`; decoding is greedy, so a resumed
run gets the same captions.

The default instruction (:data:`CAPTION_INSTRUCTION`) asks for what the release's instruction asks for (a static
scene, what lies beyond the frame, real-world vs stylised look, textures, English, 80-120 words) in our own words;
pass the release's text as ``instruction`` for a word-for-word match.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from worldwarp.errors import InputError

__all__ = ["CAPTION_INSTRUCTION", "CaptionConfig", "Captioner", "sample_frame_indices"]

CAPTION_INSTRUCTION = (
    "You describe scenes for a model that renders new camera views of them. Write one English paragraph of 80 to "
    "120 words about the scene in the input frames. Treat it as a still, static place: leave out people, animals "
    "and anything moving unless they are essential, and then describe them as motionless. Say what is visible and "
    "also how the space most likely continues outside the frame (the road bends on, the room opens into a hall, "
    "the shelves go on along the wall), so that unseen parts can be generated consistently. Call a real-world "
    "scene photorealistic and name its lighting (sunny, overcast, indoor light); mention an art style only when "
    "the frames clearly show one. Describe surfaces and materials (rough brick, polished wood, wet asphalt, "
    "glass) because they define the 3D structure. Output only the description."
)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class CaptionConfig:
    """How to caption a chunk's input frames.

    Attributes:
        model: folder or hub id of an image-text-to-text model (e.g. ``Qwen/Qwen2.5-VL-7B-Instruct``, as the
            release uses).
        instruction: the system message (default :data:`CAPTION_INSTRUCTION`).
        num_frames: at most this many frames, evenly spaced over the input, are shown to the model.
        frames_as: ``"video"`` (one video; needs a processor with a video processor), ``"images"`` (one image per
            frame), or ``"auto"`` (video when the processor can take one).
        max_new_tokens: generation budget (the release: 512).
        device: where the model runs (None: CUDA when available, else CPU).
        dtype: model dtype name (``"bfloat16"``, ``"float16"``, ``"float32"``); None: bfloat16 on CUDA, float32
            otherwise.
        offload: keep the model on the CPU between captions (it visits ``device`` only while captioning).
        local_files_only: never download (also implied by ``HF_HUB_OFFLINE=1``).
    """

    model: str
    instruction: str = CAPTION_INSTRUCTION
    num_frames: int = 8
    frames_as: Literal["auto", "video", "images"] = "auto"
    max_new_tokens: int = 512
    device: str | None = None
    dtype: str | None = None
    offload: bool = False
    local_files_only: bool = False

    def __post_init__(self) -> None:
        if not str(self.model).strip():
            raise InputError("CaptionConfig.model: give a folder or hub id of an image-text-to-text model")
        if self.num_frames < 1:
            raise InputError(f"CaptionConfig.num_frames must be >= 1, got {self.num_frames}")
        if self.max_new_tokens < 1:
            raise InputError(f"CaptionConfig.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.frames_as not in ("auto", "video", "images"):
            raise InputError(f"CaptionConfig.frames_as must be auto, video or images, got {self.frames_as!r}")
        if self.dtype is not None and self.dtype not in _DTYPES:
            raise InputError(f"CaptionConfig.dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")

    def resolved_device(self) -> torch.device:
        from worldwarp.devices import resolve_device

        return resolve_device(self.device)

    def resolved_dtype(self) -> torch.dtype:
        if self.dtype is not None:
            return _DTYPES[self.dtype]
        return torch.bfloat16 if self.resolved_device().type == "cuda" else torch.float32


def sample_frame_indices(count: int, num_frames: int) -> list[int]:
    """At most ``num_frames`` indices of ``count`` frames, evenly spaced, first and last included."""
    if count < 1:
        raise ValueError(f"need at least one frame, got {count}")
    if count <= num_frames:
        return list(range(count))
    if num_frames == 1:
        return [0]
    return sorted({round(i * (count - 1) / (num_frames - 1)) for i in range(num_frames)})


def _offline(local_files_only: bool) -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return bool(local_files_only) or flag in ("1", "true", "yes", "on")


class Captioner:
    """Captions frames with an image-text-to-text model; build it with :meth:`from_config` or from loaded parts.

    Attributes:
        calls: how many captions were generated.
    """

    def __init__(self, model: Any, processor: Any, config: CaptionConfig) -> None:
        self.config = config
        self.processor = processor
        self.device = config.resolved_device()
        self.model = model.eval().requires_grad_(False)
        self.model.to("cpu" if config.offload else self.device)
        self.calls = 0

    @classmethod
    def from_config(cls, config: CaptionConfig) -> Captioner:
        """Load the processor and the model from ``config.model`` (a folder or a hub id).

        Raises:
            InputError: the folder does not exist, or the model / processor cannot be loaded from it.
        """
        source = str(config.model)
        local = Path(source).expanduser()
        if local.exists() and not local.is_dir():
            raise InputError(f"{local}: the caption model must be a folder (or a hub id), got a file")
        if not local.exists() and (source.startswith((".", "/", "~")) or source.count("/") > 1):
            raise InputError(f"{local}: caption model folder not found (give a folder or a hub id)")
        src = str(local) if local.exists() else source
        try:
            import transformers
            from transformers import AutoModelForImageTextToText, AutoProcessor

            major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
            dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
            offline = _offline(config.local_files_only)
            processor = AutoProcessor.from_pretrained(src, local_files_only=offline)
            model = AutoModelForImageTextToText.from_pretrained(
                src, local_files_only=offline, **{dtype_kw: config.resolved_dtype()}
            )
        except ImportError as e:  # pragma: no cover - depends on the install
            raise InputError(f"captioning needs transformers ({e}): pip install 'worldwarp[wan]'") from None
        except (OSError, ValueError, KeyError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(
                f"cannot load the caption model {src!r} ({reason}); pass a local folder or hub id of an "
                "image-text-to-text model, e.g. Qwen/Qwen2.5-VL-7B-Instruct (the release's)"
            ) from e
        return cls(model, processor, config)

    def _as_video(self) -> bool:
        if self.config.frames_as != "auto":
            return self.config.frames_as == "video"
        return getattr(self.processor, "video_processor", None) is not None

    @torch.no_grad()
    def caption(self, frames: Tensor) -> str:
        """One caption of ``frames`` (N, 3, H, W) in [0, 1] (at most ``num_frames`` of them, evenly spaced)."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must have shape (N, 3, H, W), got {tuple(frames.shape)}")
        from PIL import Image

        idx = sample_frame_indices(frames.shape[0], self.config.num_frames)
        u8 = (frames[idx].clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        images = [Image.fromarray(f) for f in u8]
        video = self._as_video() and len(images) > 1
        visual = [{"type": "video"}] if video else [{"type": "image"} for _ in images]
        messages = [
            {"role": "system", "content": [{"type": "text", "text": self.config.instruction}]},
            {"role": "user", "content": visual},
        ]
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        media = {"videos": [images]} if video else {"images": images}
        inputs = self.processor(text=[text], return_tensors="pt", **media)
        if self.config.offload:
            self.model.to(self.device)
        try:
            inputs = inputs.to(self.device)
            ids = self.model.generate(**inputs, max_new_tokens=self.config.max_new_tokens, do_sample=False)
        finally:
            if self.config.offload:
                self.model.to("cpu")
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
        new = ids[:, inputs["input_ids"].shape[1] :]
        self.calls += 1
        return str(self.processor.batch_decode(new, skip_special_tokens=True)[0]).strip()
