"""Make ``release_golden.safetensors``: golden values computed by the WorldWarp release's own code.

Run OUTSIDE the project, with the release checked out at commit 0396b80 (public fork: github.com/qbhan/WorldWarp)
and diffusers installed, e.g.::

    git -C WorldWarp show 0396b80:pose_control.py > /tmp/release_src/pose_control.py
    git -C WorldWarp show 0396b80:src/wan/model.py > /tmp/release_src/wan_model.py
    cd tests/data/release_golden && python make_golden.py /tmp/release_src release_golden.safetensors

Nothing of the release is copied here: its functions are compiled from the user's checkout at run time.

* ``pose_control.py``: ``get_sigmas``, ``erode_mask``, ``flow_matching_sample_step``, ``sample_sequence`` (each
  function definition is taken from the file's syntax tree and executed; ``visualize_schedule``, which only writes
  a PNG, is replaced by a no-op and tqdm is silenced), and the mask-reduction statements of
  ``WanVideoGenerator.run_inference_chunk`` (lines 1287-1291, checked by their SHA-256), executed with the
  variables they read.
* ``src/wan/model.py``: the release's ``WanTransformer3DModel`` (its module-level ``flash_attn`` import is
  satisfied by an empty stub; the model's default SDPA attention processor runs), tiny config, weights drawn with
  ``torch.manual_seed(0)``; diffusers' ``WanTransformer3DModel`` loads the same state dict strictly and its forward
  with the timesteps flattened to (B, seq_len) is compared with the release model's 4-D per-patch timesteps.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

MASK_BLOCK_LINES = (1287, 1291)
MASK_BLOCK_SHA256 = "24558242d80555eaa4511525f868b5ef2d6d92eebde0d0a269e5f57742c21872"
TINY = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=8,
    in_channels=4,
    out_channels=4,
    text_dim=32,
    freq_dim=32,
    ffn_dim=32,
    num_layers=2,
    rope_max_seq_len=32,
)
WEIGHT_SEED, INPUT_SEED, NOISE_SEED = 0, 1234, 42
B, T, C, H, W, L = 1, 3, 4, 8, 12, 8  # latents (B, T', C, H', W') in the release's layout; L prompt tokens
STEPS = 50
STRENGTHS = (0.0, 0.6, 0.8, 1.0)
CONTEXT_FRAMES = (1, 5)  # -> 1 and 2 history latent frames
GUIDANCE = (1.0, 5.0)
PIXEL_MASKS = ((9, 64, 96), (5, 48, 48))  # (frames, height, width) of the pixel-mask cases


def load_release(src: Path) -> tuple[types.ModuleType, dict, str]:
    import diffusers  # noqa: F401  (imported before the stub: it probes for flash_attn)

    stub = types.ModuleType("flash_attn")
    stub.__spec__ = importlib.machinery.ModuleSpec("flash_attn", None)
    stub.flash_attn_func = None
    sys.modules["flash_attn"] = stub
    wan = types.ModuleType("release_wan_model")
    exec(compile((src / "wan_model.py").read_text(), str(src / "wan_model.py"), "exec"), wan.__dict__)

    text = (src / "pose_control.py").read_text()
    from tqdm import tqdm

    ns: dict = {"torch": torch, "F": F, "os": __import__("os")}
    ns["tqdm"] = lambda *a, **k: tqdm(*a, **{**k, "disable": True})
    ns["visualize_schedule"] = lambda sched_mat, save_path: None
    wanted = {"get_sigmas", "erode_mask", "flow_matching_sample_step", "sample_sequence"}
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name in wanted:
            exec(compile(ast.Module(body=[node], type_ignores=[]), str(src / "pose_control.py"), "exec"), ns)
    missing = wanted - set(ns)
    if missing:
        raise SystemExit(f"functions not found in pose_control.py: {sorted(missing)}")
    lines = text.splitlines()[MASK_BLOCK_LINES[0] - 1 : MASK_BLOCK_LINES[1]]
    if hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest() != MASK_BLOCK_SHA256:
        raise SystemExit("pose_control.py lines 1287-1291 differ from commit 0396b80")
    block = "\n".join(line.strip() for line in lines)
    return wan, ns, block


def main(src: Path, out: Path) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from safetensors.torch import save_file

    wan, ns, block = load_release(src)
    torch.manual_seed(WEIGHT_SEED)
    model = wan.WanTransformer3DModel(**TINY).eval()
    state = model.state_dict()
    reference = WanTransformer3DModel(**TINY).eval()
    reference.load_state_dict(state, strict=True)

    g = torch.Generator().manual_seed(INPUT_SEED)
    xs_warped = torch.randn(B, T, C, H, W, generator=g)
    p_emb = torch.randn(1, L, TINY["text_dim"], generator=g)
    n_emb = torch.randn(1, L, TINY["text_dim"], generator=g)
    mask_patch = torch.rand(B, T, 1, H // 2, W // 2, generator=g) > 0.4
    mask_patch = mask_patch.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    mask_cell = torch.rand(B, T, 1, H, W, generator=g) > 0.4
    ts = torch.rand(B, T, H // 2, W // 2, generator=g) * 1000
    with torch.no_grad():
        a = model(xs_warped.permute(0, 2, 1, 3, 4), ts, encoder_hidden_states=p_emb)[0]
        b = reference(
            hidden_states=xs_warped.permute(0, 2, 1, 3, 4),
            timestep=ts.flatten(1),
            encoder_hidden_states=p_emb,
            return_dict=False,
        )[0]
    forward_diff = float((a - b).abs().max())

    tensors: dict[str, torch.Tensor] = {}
    cases = []
    for strength in STRENGTHS:
        for mask_name, mask in (("patch", mask_patch), ("cell", mask_cell)):
            for ctx in CONTEXT_FRAMES:
                for cfg_scale in GUIDANCE:
                    cfg = SimpleNamespace(
                        inference_params=SimpleNamespace(
                            sampling_timesteps=STEPS, minxs=1.0 - strength, guidance_scale=cfg_scale
                        ),
                        model_params=SimpleNamespace(latent_downsampling_factor=[4, 8]),
                    )
                    gen = torch.Generator().manual_seed(NOISE_SEED)
                    sched = FlowMatchEulerDiscreteScheduler(shift=5)
                    x = ns["sample_sequence"](model, sched, xs_warped, mask, p_emb, n_emb, cfg, gen, ctx)
                    name = f"s{strength}_{mask_name}_ctx{ctx}_cfg{cfg_scale:g}"
                    tensors[f"out/{name}"] = x.float().contiguous()
                    cases.append(
                        dict(
                            name=name,
                            strength=strength,
                            mask=mask_name,
                            context_frames=ctx,
                            history_latent_frames=(ctx - 1) // 4 + 1,
                            guidance_scale=cfg_scale,
                        )
                    )
    noise = torch.randn(xs_warped.shape, generator=torch.Generator().manual_seed(NOISE_SEED), dtype=torch.float32)
    sched = FlowMatchEulerDiscreteScheduler(shift=5)
    sched.set_timesteps(STEPS)

    pixel_cases = []
    for k, (tp, hp, wp) in enumerate(PIXEL_MASKS):
        gm = torch.Generator().manual_seed(100 + k)
        low = torch.rand(1, tp, hp // 16, wp // 16, generator=gm)
        soft = F.interpolate(low, size=(hp, wp), mode="bilinear", align_corners=False)
        soft = (soft + 0.15 * torch.rand(1, tp, hp, wp, generator=gm)).clamp(0, 1)
        soft_u8 = (soft * 255).round().to(torch.uint8)
        env = dict(
            valid_masks=soft_u8.float() / 255,
            F=F,
            erode_mask=ns["erode_mask"],
            b=1,
            h_orig=hp,
            w_orig=wp,
            self=SimpleNamespace(
                cfg=SimpleNamespace(
                    inference_params=SimpleNamespace(mask_thres=0.5),
                    model_params=SimpleNamespace(latent_downsampling_factor=[4, 8]),
                )
            ),
        )
        exec(block, env)
        lat = env["valid_masks_lat"]  # (1, T', 1, H/8, W/8) bool
        tensors[f"pixmask/{k}/soft_u8"] = soft_u8.contiguous()
        tensors[f"pixmask/{k}/latent"] = lat.to(torch.uint8).contiguous()
        pixel_cases.append(dict(index=k, frames=tp, height=hp, width=wp, latent_shape=list(lat.shape)))

    tensors.update(
        {
            "inputs/xs_warped": xs_warped,
            "inputs/noise": noise,
            "inputs/prompt_embeds": p_emb,
            "inputs/negative_prompt_embeds": n_emb,
            "inputs/mask_patch": mask_patch.to(torch.uint8),
            "inputs/mask_cell": mask_cell.to(torch.uint8),
            "scheduler/sigmas": sched.sigmas,
            "scheduler/timesteps": sched.timesteps,
            **{f"weights/{k}": v for k, v in state.items()},
        }
    )
    meta = dict(
        release="HyoKong/WorldWarp at 0396b80 (public fork qbhan/WorldWarp)",
        transformer_config=TINY,
        seeds=dict(weights=WEIGHT_SEED, inputs=INPUT_SEED, noise=NOISE_SEED),
        steps=STEPS,
        scheduler="FlowMatchEulerDiscreteScheduler(shift=5).set_timesteps(50)",
        layout="latents (B, T', C, H', W'); masks (B, T', 1, H', W'); pixel masks (1, T, H, W) as uint8 / 255",
        mask_threshold=0.5,
        erosion=15,
        release_vs_diffusers_forward_max_abs_diff=forward_diff,
        state_dict_keys=len(state),
        torch=torch.__version__,
        diffusers=__import__("diffusers").__version__,
        dtype="float32",
        device="cpu",
        cases=cases,
        pixel_mask_cases=pixel_cases,
    )
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out), metadata={"meta": json.dumps(meta)})
    print(f"wrote {out} ({out.stat().st_size} bytes); release vs diffusers forward max |diff| {forward_diff}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
