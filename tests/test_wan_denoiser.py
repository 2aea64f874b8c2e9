"""The ``wan`` ST-Diff backend end to end on tiny random Wan2.1-shaped models, offline.

A module fixture writes a tiny ``WanTransformer3DModel``, ``AutoencoderKLWan``, ``UMT5EncoderModel`` and a word-level
tokenizer into a Wan2.1-Diffusers folder layout, plus an ST-Diff state dict in the released key layout (with a
``module.`` prefix) whose values are perturbed away from the folder's transformer weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from worldwarp.diffusion.denoisers.base import Denoiser  # noqa: E402
from worldwarp.diffusion.denoisers.wan import (  # noqa: E402
    WAN_NEGATIVE_PROMPT_ZH,
    WanConditioning,
    WanConfig,
    WanDenoiser,
    clean_prompt,
)
from worldwarp.diffusion.denoisers.wan_loading import (  # noqa: E402
    PromptEmbeddingCache,
    normalize_state_dict_keys,
    read_state_dict,
    text_encoder_id,
)
from worldwarp.errors import InputError  # noqa: E402

WORDS = "a red house by the lake camera moves forward slowly blurry static low quality".split()
Z_DIM = 4
TEXT_DIM = 32


def _tiny_transformer(seed: int):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=Z_DIM,
        out_channels=Z_DIM,
        text_dim=TEXT_DIM,
        freq_dim=32,
        ffn_dim=32,
        num_layers=2,
        rope_max_seq_len=32,
    )


def _tiny_vae(seed: int):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return AutoencoderKLWan(
        base_dim=8,
        z_dim=Z_DIM,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        latents_mean=[0.1, -0.2, 0.3, 0.0],
        latents_std=[1.5, 0.5, 2.0, 1.0],
    )


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def _tiny_text_encoder(seed: int):
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    cfg = UMT5Config(
        vocab_size=32, d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4, relative_attention_num_buckets=8
    )
    return UMT5EncoderModel(cfg)


@pytest.fixture(scope="module")
def wan_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny Wan2.1-Diffusers folder + ST-Diff weights (.safetensors with 'module.' prefix, .pt in a container)."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("wan")
    model = root / "Wan2.1-T2V-tiny-Diffusers"
    transformer = _tiny_transformer(0)
    transformer.save_pretrained(model / "transformer")
    _tiny_vae(1).save_pretrained(model / "vae")
    _tiny_text_encoder(2).save_pretrained(model / "text_encoder")
    _tiny_tokenizer().save_pretrained(model / "tokenizer")

    g = torch.Generator().manual_seed(3)
    stdiff = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in transformer.state_dict().items()}
    st_path = root / "stdiff.safetensors"
    save_file({f"module.{k}": v.contiguous() for k, v in stdiff.items()}, str(st_path))
    pt_path = root / "stdiff.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in stdiff.items()}, "step": 10000}, pt_path)
    reference = root / "stdiff_reference.safetensors"
    save_file({k: v.contiguous() for k, v in stdiff.items()}, str(reference))
    return {"root": root, "model": model, "stdiff": st_path, "stdiff_pt": pt_path, "reference": reference}


@pytest.fixture(scope="module")
def denoiser(wan_files: dict[str, Path]) -> WanDenoiser:
    cfg = WanConfig(model=str(wan_files["model"]), stdiff_weights=str(wan_files["stdiff"]), device="cpu")
    return WanDenoiser.from_config(cfg)


def _cond(denoiser: WanDenoiser, seed: int, negative: bool = True) -> WanConditioning:
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(1, 8, TEXT_DIM, generator=g)
    neg = torch.randn(1, 8, TEXT_DIM, generator=g) if negative else None
    return WanConditioning(positive=pos, negative=neg)


# ---------------------------------------------------------------------------------------------------- loading


def test_protocol_and_factors(denoiser: WanDenoiser) -> None:
    assert isinstance(denoiser, Denoiser)
    assert (denoiser.time_factor, denoiser.space_factor, denoiser.patch_size) == (4, 8, 2)
    assert denoiser.latent_channels == Z_DIM
    assert denoiser.dtype == torch.float32 and denoiser.device == torch.device("cpu")
    assert not any(p.requires_grad for p in denoiser.transformer.parameters())


def test_loaded_weights_equal_the_file(denoiser: WanDenoiser, wan_files: dict[str, Path]) -> None:
    from safetensors.torch import load_file

    expected = load_file(str(wan_files["reference"]))
    base = load_file(str(next((wan_files["model"] / "transformer").glob("*.safetensors"))))
    loaded = denoiser.transformer.state_dict()
    assert set(loaded) == set(expected)
    for k, v in expected.items():
        assert torch.equal(loaded[k], v), k
    # the ST-Diff file, not the folder's base weights, is what got loaded
    assert not torch.equal(loaded["proj_out.weight"], base["proj_out.weight"])


def test_pt_container_with_model_prefix_loads_the_same(denoiser: WanDenoiser, wan_files: dict[str, Path]) -> None:
    cfg = WanConfig(model=str(wan_files["model"]), stdiff_weights=str(wan_files["stdiff_pt"]), device="cpu")
    other = WanDenoiser.from_config(cfg)
    a, b = denoiser.transformer.state_dict(), other.transformer.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_missing_key_is_a_clear_error(wan_files: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    sd = read_state_dict(wan_files["stdiff"])
    sd.pop("module.blocks.1.ffn.net.2.weight")
    sd["module.extra.weight"] = torch.zeros(3)
    bad = tmp_path / "broken.safetensors"
    save_file(sd, str(bad))
    cfg = WanConfig(model=str(wan_files["model"]), stdiff_weights=str(bad), device="cpu")
    with pytest.raises(InputError) as e:
        WanDenoiser.from_config(cfg)
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg
    assert "1 missing key(s): blocks.1.ffn.net.2.weight" in msg
    assert "1 unexpected key(s): extra.weight" in msg


def test_shape_mismatch_and_original_layout_hint(wan_files: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    sd = normalize_state_dict_keys(read_state_dict(wan_files["stdiff"]))
    sd["proj_out.bias"] = torch.zeros(5)
    sd["blocks.0.self_attn.q.weight"] = torch.zeros(2, 2)
    bad = tmp_path / "shapes.safetensors"
    save_file(sd, str(bad))
    cfg = WanConfig(model=str(wan_files["model"]), stdiff_weights=str(bad), device="cpu")
    with pytest.raises(InputError, match=r"shape mismatch.*proj_out\.bias \(5,\) vs \(16,\).*convert_wan_to_diffusers"):
        WanDenoiser.from_config(cfg)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda root: root / "nope.safetensors", "not found"),
        (lambda root: root / "weights.npz", "unknown weights format"),
        (lambda root: root / "corrupt.pt", "cannot read weights"),
    ],
)
def test_bad_weights_files(wan_files: dict[str, Path], tmp_path: Path, make, pattern: str) -> None:
    path = make(tmp_path)
    if path.name != "nope.safetensors":
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=pattern) as e:
        read_state_dict(path)
    assert str(path) in str(e.value)


def test_missing_model_says_what_to_pass(wan_files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Wan2.1-T2V-1.3B-Diffusers") as e:
        WanDenoiser.from_config(WanConfig(model="nobody/no-such-wan-model", device="cpu"))
    assert "\n" not in str(e.value)
    shutil.copytree(wan_files["model"] / "transformer", tmp_path / "transformer")  # a folder without vae/
    with pytest.raises(InputError, match=r"no vae/ sub-folder"):
        WanDenoiser.from_config(WanConfig(model=str(tmp_path), device="cpu"))


def test_config_validation() -> None:
    with pytest.raises(InputError, match="offload"):
        WanConfig(offload="gpu")
    with pytest.raises(InputError, match="dtype"):
        WanConfig(dtype="int8")
    assert WanConfig(dtype="bf16").resolved_dtype() == torch.bfloat16
    assert WanConfig(device="cpu").resolved_dtype() == torch.float32
    assert WanConfig().negative_prompt == WAN_NEGATIVE_PROMPT_ZH


# ---------------------------------------------------------------------------------------------------- VAE


def test_encode_decode_shapes_and_normalisation(denoiser: WanDenoiser) -> None:
    long = torch.rand(1, 3, 49, 16, 16, generator=torch.Generator().manual_seed(0))
    z_long = denoiser.encode(long)
    assert z_long.shape == (1, Z_DIM, 13, 2, 2) and z_long.dtype == torch.float32  # 49 frames -> 13 latent frames
    assert denoiser.decode(z_long).shape == (1, 3, 49, 16, 16)

    video = torch.rand(1, 3, 5, 16, 16, generator=torch.Generator().manual_seed(1))
    z = denoiser.encode(video)
    # reference: the Wan pipelines' normalisation written out by hand on the raw VAE
    vae = denoiser.vae
    with torch.no_grad():
        raw = vae.encode(video * 2 - 1).latent_dist.mode()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(z, (raw - mean) / std)
    out = denoiser.decode(z)
    assert out.min() >= 0 and out.max() <= 1
    with torch.no_grad():
        ref = (vae.decode(z * std + mean).sample.clamp(-1, 1) + 1) / 2
    torch.testing.assert_close(out, ref)
    with pytest.raises(ValueError, match="1 \\+ a multiple of 4"):
        denoiser.encode(torch.rand(1, 3, 6, 16, 16))


# ---------------------------------------------------------------------------------------------------- velocity


def test_velocity_shape_and_timestep_mapping(denoiser: WanDenoiser) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, Z_DIM, 3, 4, 4, generator=g)
    # per-frame levels, different per batch element: (B, T', H'/2, W'/2)
    sig = torch.tensor([[0.9, 0.5, 0.0], [1.0, 0.3, 0.7]])[:, :, None, None].expand(2, 3, 2, 2).contiguous()
    cond = _cond(denoiser, 0, negative=False)
    v = denoiser.velocity(x, sig, cond, guidance_scale=1.0)
    assert v.shape == x.shape and v.dtype == x.dtype
    # reference: raw transformer with timesteps built independently, t-major token order, timestep = 1000 sigma
    ts = (sig[:, :, :1, :1].reshape(2, 3) * 1000).repeat_interleave(4, dim=1)  # (B, 3 frames x 4 tokens)
    with torch.no_grad():
        ref = denoiser.transformer(
            hidden_states=x, timestep=ts, encoder_hidden_states=cond.positive.expand(2, -1, -1), return_dict=False
        )[0]
    torch.testing.assert_close(v, ref)
    # uniform levels agree with diffusers' scalar-timestep path (the Wan pipeline's call)
    uni = torch.full((2, 3, 2, 2), 0.6)
    with torch.no_grad():
        ref_scalar = denoiser.transformer(
            hidden_states=x,
            timestep=torch.full((2,), 600.0),
            encoder_hidden_states=cond.positive.expand(2, -1, -1),
            return_dict=False,
        )[0]
    torch.testing.assert_close(denoiser.velocity(x, uni, cond, 1.0), ref_scalar, rtol=1e-4, atol=1e-5)


def test_one_token_sigma_changes_the_output(denoiser: WanDenoiser) -> None:
    x = torch.randn(1, Z_DIM, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    cond = _cond(denoiser, 1, negative=False)
    sig = torch.full((1, 3, 2, 2), 0.5)
    v0 = denoiser.velocity(x, sig, cond)
    sig2 = sig.clone()
    sig2[0, 1, 0, 1] = 0.9  # one token: frame 1, patch row 0, patch column 1
    v1 = denoiser.velocity(x, sig2, cond)
    diff = (v1 - v0).abs()
    token = diff[0, :, 1, 0:2, 2:4]  # that token's latent cells
    assert token.max() > 1e-3
    # the token's own cells change most (its adaLN modulation changed; others only through attention)
    assert token.mean() > 5 * diff[0, :, 0].mean()


def test_classifier_free_guidance(denoiser: WanDenoiser) -> None:
    x = torch.randn(1, Z_DIM, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    sig = torch.rand(1, 2, 2, 2, generator=torch.Generator().manual_seed(4))
    cond = _cond(denoiser, 2)
    v_pos = denoiser.velocity(x, sig, WanConditioning(cond.positive), 5.0)  # no negative: no guidance
    v_neg = denoiser.velocity(x, sig, WanConditioning(cond.negative), 1.0)
    torch.testing.assert_close(denoiser.velocity(x, sig, cond, 1.0), v_pos)
    expected = v_neg + 5.0 * (v_pos - v_neg)
    torch.testing.assert_close(denoiser.velocity(x, sig, cond, 5.0), expected, rtol=1e-4, atol=1e-5)
    denoiser.config.batch_cfg = True
    try:
        torch.testing.assert_close(denoiser.velocity(x, sig, cond, 5.0), expected, rtol=1e-4, atol=1e-5)
    finally:
        denoiser.config.batch_cfg = False
    with pytest.raises(ValueError, match="sigmas must have shape"):
        denoiser.velocity(x, sig[:, :1], cond)


def test_sequential_offload_matches(wan_files: dict[str, Path], denoiser: WanDenoiser) -> None:
    pytest.importorskip("accelerate")
    cfg = WanConfig(
        model=str(wan_files["model"]), stdiff_weights=str(wan_files["stdiff"]), device="cpu", offload="sequential"
    )
    off = WanDenoiser.from_config(cfg)
    x = torch.randn(1, Z_DIM, 2, 4, 4, generator=torch.Generator().manual_seed(5))
    sig = torch.full((1, 2, 2, 2), 0.4)
    cond = _cond(denoiser, 3)
    torch.testing.assert_close(off.velocity(x, sig, cond, 3.0), denoiser.velocity(x, sig, cond, 3.0))
    video = torch.rand(1, 3, 5, 16, 16, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(off.encode(video), denoiser.encode(video))


def test_bf16_keeps_diffusers_fp32_modules(wan_files: dict[str, Path], denoiser: WanDenoiser) -> None:
    cfg = WanConfig(model=str(wan_files["model"]), stdiff_weights=str(wan_files["stdiff"]), device="cpu", dtype="bf16")
    half = WanDenoiser.from_config(cfg)
    params = dict(half.transformer.named_parameters())
    # diffusers' WanTransformer3DModel._keep_in_fp32_modules stay float32, the rest is bf16
    assert params["condition_embedder.time_embedder.linear_1.weight"].dtype == torch.float32
    assert params["blocks.0.scale_shift_table"].dtype == torch.float32
    assert params["blocks.0.attn1.to_q.weight"].dtype == torch.bfloat16
    assert params["proj_out.weight"].dtype == torch.bfloat16
    x = torch.randn(1, Z_DIM, 2, 4, 4, generator=torch.Generator().manual_seed(8))
    sig = torch.full((1, 2, 2, 2), 0.5)
    cond = _cond(denoiser, 5, negative=False)
    v16 = half.velocity(x, sig, cond)
    assert v16.dtype == torch.float32  # back in the caller's dtype
    v32 = denoiser.velocity(x, sig, cond)
    assert (v16 - v32).abs().max() < 0.05 * v32.abs().max()


# ---------------------------------------------------------------------------------------------------- text


def test_prompt_embeddings_match_wan_recipe_and_cache_skips_encoder(wan_files: dict[str, Path], tmp_path: Path) -> None:
    cache_dir = tmp_path / "prompts"
    cfg = WanConfig(
        model=str(wan_files["model"]),
        stdiff_weights=str(wan_files["stdiff"]),
        device="cpu",
        prompt_cache_dir=str(cache_dir),
        max_sequence_length=16,
    )
    first = WanDenoiser.from_config(cfg)
    assert first.text_encoder is None  # loaded lazily, on the first cache miss
    cond = first.encode_prompt("a  red house by the lake ", negative="blurry static")
    assert first.text_encoder_calls == 2 and len(list(cache_dir.glob("*.safetensors"))) == 2
    assert cond.positive.shape == (1, 16, TEXT_DIM) and cond.negative.shape == (1, 16, TEXT_DIM)

    # reference: tokenise the cleaned prompt, encode with the mask, keep the 7 real tokens (6 words + </s>)
    ids = torch.tensor([[3 + WORDS.index(w) for w in "a red house by the lake".split()] + [1] + [0] * 9])
    mask = (torch.arange(16) < 7).long()[None]
    with torch.no_grad():
        hidden = first.text_encoder(ids, mask).last_hidden_state
    torch.testing.assert_close(cond.positive[:, :7], hidden[:, :7])
    assert torch.count_nonzero(cond.positive[:, 7:]) == 0

    first.encode_prompt("a red house by the lake", negative="blurry static")  # same cleaned prompts: cache hits
    assert first.text_encoder_calls == 2

    # a later run never loads the text encoder
    cfg.use_text_encoder = False
    later = WanDenoiser.from_config(cfg)
    again = later.encode_prompt("a red house by the lake", negative="blurry static")
    assert later.text_encoder is None and later.text_encoder_calls == 0
    torch.testing.assert_close(again.positive, cond.positive)
    torch.testing.assert_close(again.negative, cond.negative)
    with pytest.raises(InputError, match="not in the prompt-embedding cache"):
        later.encode_prompt("a house")  # the default negative prompt is not cached either


def test_prompt_cache_key_depends_on_encoder_and_length(tmp_path: Path, wan_files: dict[str, Path]) -> None:
    a = PromptEmbeddingCache(tmp_path, text_encoder_id(wan_files["model"]), 512)
    b = PromptEmbeddingCache(tmp_path, "Wan-AI/Wan2.1-T2V-1.3B-Diffusers/text_encoder", 512)
    c = PromptEmbeddingCache(tmp_path, text_encoder_id(wan_files["model"]), 256)
    assert len({a.path("x"), b.path("x"), c.path("x"), a.path("y")}) == 4
    emb = torch.arange(6.0).view(1, 2, 3)
    a.put("x", emb)
    assert torch.equal(a.get("x"), emb) and b.get("x") is None
    assert not list(tmp_path.glob(".tmp-*"))
    assert clean_prompt("  a &amp;amp; b\n\tc ") == "a & b c"


# ---------------------------------------------------------------------------------------------------- sampler


def test_short_sample_through_the_sampler(denoiser: WanDenoiser) -> None:
    sampler = pytest.importorskip("worldwarp.diffusion.sampler")
    video = torch.rand(1, 3, 9, 32, 32, generator=torch.Generator().manual_seed(7))
    prior = denoiser.encode(video)  # (1, C, 3, 4, 4): 2x2 tokens per latent frame
    mask = torch.ones(1, 3, 4, 4, dtype=torch.bool)
    mask[:, 2, :2, :2] = False  # a hole in the last latent frame
    history = torch.tensor([[True, False, False]])
    cfg = sampler.SamplerConfig(steps=4, shift=5.0, strength=0.6, guidance_scale=2.0)
    out = sampler.sample(
        denoiser, prior, mask, history, cfg, generator=torch.Generator().manual_seed(0), cond=_cond(denoiser, 4)
    )
    assert out.shape == prior.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out[:, :, 0], prior[:, :, 0])  # history frame restored exactly
    assert not torch.allclose(out[:, :, 1:], prior[:, :, 1:])
    assert denoiser.decode(out).shape == (1, 3, 9, 32, 32)


def test_registry_builds_the_wan_backend(wan_files: dict[str, Path], denoiser: WanDenoiser) -> None:
    registry = pytest.importorskip("worldwarp.diffusion.denoisers.registry")
    spec = registry.DenoiserSpec(name="wan", wan_model=str(wan_files["model"]), checkpoint=str(wan_files["stdiff"]))
    built = registry.load_denoiser(spec, device="cpu")
    assert isinstance(built, WanDenoiser)
    a, b = built.transformer.state_dict(), denoiser.transformer.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pipeline_from_pretrained_wan(wan_files: dict[str, Path]) -> None:
    from worldwarp import PipelineConfig, WorldWarpPipeline

    pipe = WorldWarpPipeline.from_pretrained(
        "wan", checkpoint=wan_files["stdiff"], base=str(wan_files["model"]), device="cpu"
    )
    assert isinstance(pipe.denoiser, WanDenoiser)
    assert pipe.config == PipelineConfig.release()  # the denoiser's default preset
    assert pipe.denoiser.config.stdiff_weights == str(wan_files["stdiff"])
