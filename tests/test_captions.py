"""Per-chunk captions with a tiny random image-text-to-text model (LLaVA layout) built from a config, offline.

(Qwen2-VL / Qwen2.5-VL processors need torchvision for their video processor, which this environment lacks; the
captioner only uses the generic ``AutoProcessor`` / ``AutoModelForImageTextToText`` interface, exercised here.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from worldwarp.diffusion.captions import (  # noqa: E402
    CAPTION_INSTRUCTION,
    CaptionConfig,
    Captioner,
    sample_frame_indices,
)
from worldwarp.errors import InputError  # noqa: E402

SPECIAL = ["<pad>", "<s>", "<unk>", "<image>", "<|im_start|>", "<|im_end|>"]
WORDS = "a red house by the lake scene static street wall wood glass system user assistant".split()
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}"
    "{% elif c['type'] == 'image' %}<image>{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_tiny_vlm(folder: Path, seed: int = 0) -> Path:
    """A tiny random LLaVA (CLIP vision tower + Llama) with a word-level tokenizer, saved like a hub model."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    vocab = {t: i for i, t in enumerate(SPECIAL + WORDS + ["\n"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern=r"<\|?[a-z_/]+\|?>|\w+|\n", behavior="isolated")
    tok.add_special_tokens(SPECIAL)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="<|im_end|>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=TEMPLATE,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    config = LlavaConfig(
        text_config=dict(
            model_type="llama",
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=256,
            eos_token_id=vocab["<|im_end|>"],
            pad_token_id=0,
            bos_token_id=1,
        ),
        vision_config=dict(
            model_type="clip_vision_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
            projection_dim=32,
        ),
        image_token_id=vocab["<image>"],
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = vocab["<|im_end|>"]
    model.generation_config.pad_token_id = 0
    # random weights: keep greedy decoding on words (no special tokens, no immediate end)
    model.generation_config.suppress_tokens = [vocab[t] for t in SPECIAL if t != "<|im_end|>"] + [vocab["\n"]]
    model.generation_config.begin_suppress_tokens = [vocab["<|im_end|>"]]
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm"))


def test_sample_frame_indices() -> None:
    assert sample_frame_indices(1, 8) == [0]
    assert sample_frame_indices(5, 8) == [0, 1, 2, 3, 4]
    assert sample_frame_indices(81, 5) == [0, 20, 40, 60, 80]
    assert sample_frame_indices(10, 1) == [0]


def test_caption_is_deterministic_text(tiny_vlm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cap = Captioner.from_config(CaptionConfig(model=str(tiny_vlm), device="cpu", max_new_tokens=5, num_frames=3))
    frames = torch.rand(9, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    a = cap.caption(frames)
    b = cap.caption(frames)
    assert isinstance(a, str) and a == b and cap.calls == 2
    assert 0 < len(a.split()) <= 5 and set(a.split()) <= set(WORDS)
    assert cap.caption(frames[:1]) is not None  # a single start image


def test_caption_prompt_carries_the_instruction(tiny_vlm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cap = Captioner.from_config(CaptionConfig(model=str(tiny_vlm), device="cpu", max_new_tokens=2, num_frames=2))

    class Spy:
        def __init__(self, inner: object) -> None:
            self.inner = inner
            self.kwargs: dict = {}

        def __call__(self, *args, **kwargs):
            self.kwargs = kwargs
            return self.inner(*args, **kwargs)

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

    spy = Spy(cap.processor)
    cap.processor = spy
    cap.caption(torch.rand(4, 3, 32, 32))
    seen = spy.kwargs
    assert CAPTION_INSTRUCTION in seen["text"][0]
    assert len(seen["images"]) == 2  # num_frames evenly spaced


@pytest.mark.parametrize("model", ["/no/such/vlm", "./missing_vlm_folder"])
def test_missing_caption_model_is_input_error(model: str) -> None:
    with pytest.raises(InputError, match="caption model folder not found"):
        Captioner.from_config(CaptionConfig(model=model))


def test_unloadable_caption_model_is_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="cannot load the caption model"):
        Captioner.from_config(CaptionConfig(model=str(tmp_path)))  # an empty folder
    with pytest.raises(InputError, match="cannot load the caption model"):
        Captioner.from_config(CaptionConfig(model="nobody/not-a-cached-model"))  # hub id, offline


def test_pipeline_prompts_each_chunk_with_its_caption(tiny_vlm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk 0 is captioned from the start image, chunk k from chunk k-1's frames; each prompt is encoded once."""
    from worldwarp.cameras import Cameras
    from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig
    from worldwarp.diffusion.sampler import SamplerConfig
    from worldwarp.pipeline import PipelineConfig, WorldWarpPipeline
    from worldwarp.splat.cache import CacheConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    class FakeCaptioner:
        def __init__(self) -> None:
            self.inputs: list[int] = []

        def caption(self, frames: torch.Tensor) -> str:
            self.inputs.append(frames.shape[0])
            return f"scene {len(self.inputs)}"

    torch.manual_seed(0)
    den = TinyDenoiser(TinyDenoiserConfig(width=16, depth=1, heads=2, freq_dim=8, widths=(8, 16, 16)))
    encoded: list[tuple[str, str]] = []
    real_encode = den.encode_prompt

    def encode_prompt(prompt: str, negative: str = "") -> object:
        encoded.append((prompt, negative))
        return real_encode(prompt, negative)

    den.encode_prompt = encode_prompt  # type: ignore[method-assign]
    cfg = PipelineConfig.cpu(
        height=32, width=32, chunk_frames=5, overlap=1, progress=False, negative_prompt="blurry",
        sampler=SamplerConfig(steps=2, guidance_scale=1.0), cache=CacheConfig(steps=1, max_points_per_frame=200),
    )  # fmt: skip
    fake = FakeCaptioner()
    pipe = WorldWarpPipeline(den, cfg, captioner=fake)
    K = torch.tensor([[[30.0, 0, 16], [0, 30.0, 16], [0, 0, 1]]]).repeat(9, 1, 1)
    c2w = torch.eye(4).repeat(9, 1, 1)
    c2w[:, 2, 3] = torch.linspace(0, 0.2, 9)
    out = pipe(torch.rand(3, 32, 32), Cameras(c2w, K, 32, 32), torch.full((32, 32), 2.0))
    assert [r.prompt for r in out.chunks] == ["scene 1", "scene 2"]
    assert fake.inputs == [1, 5]  # the start image, then chunk 0's five frames
    assert encoded == [("scene 1", "blurry"), ("scene 2", "blurry")]
