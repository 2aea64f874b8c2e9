"""Files behind the Wan ST-Diff backend: model folders / hub ids, the released ST-Diff state dict, prompt cache.

* :func:`load_component` - one sub-model (``transformer``, ``vae``, ``text_encoder``, ``tokenizer``) of a
  Wan2.1-T2V-1.3B-Diffusers folder or hub id; a missing model is an :class:`~worldwarp.errors.InputError` that
  says what to pass.
* :func:`read_state_dict` / :func:`normalize_state_dict_keys` / :func:`check_state_dict` - the released
  WorldWarp transformer checkpoint (``.safetensors``, ``.pt``, ``.pth``, ``.bin``, ``.ckpt``): unwrapped from
  ``{"state_dict": ...}``-style containers, common prefixes (``module.``, ``model.``, ...) stripped, and checked
  strictly against ``WanTransformer3DModel``'s parameter names and shapes.
* :class:`PromptEmbeddingCache` - umT5 prompt embeddings on disk, keyed by a hash of (prompt, encoder id,
  max sequence length), so that later runs need not load the 11 GB text encoder at all.

Heavy libraries (diffusers, transformers, safetensors) are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from worldwarp.errors import InputError

__all__ = [
    "WAN_SUBFOLDERS",
    "is_local_model",
    "check_model_folder",
    "load_component",
    "read_state_dict",
    "normalize_state_dict_keys",
    "check_state_dict",
    "text_encoder_id",
    "prompt_cache_key",
    "PromptEmbeddingCache",
    "load_stdiff_transformer",
    "cast_parameters",
]

# Sub-folders of a Wan2.1-*-Diffusers model (scheduler/ and model_index.json are not needed here).
WAN_SUBFOLDERS = ("transformer", "vae", "text_encoder", "tokenizer")

# Prefixes that training wrappers put in front of parameter names (DDP, Lightning, EMA, torch.compile, ...).
_KEY_PREFIXES = ("module.", "model.", "transformer.", "diffusion_model.", "dit.", "net.", "_orig_mod.")
# Keys of checkpoint containers that hold the actual state dict.
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "module", "transformer", "ema", "net")
_STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")

_HOW_TO_GET = (
    "pass a local Wan2.1-T2V-1.3B-Diffusers folder (with transformer/, vae/, text_encoder/, tokenizer/) or the hub "
    "id Wan-AI/Wan2.1-T2V-1.3B-Diffusers with network access or a filled Hugging Face cache (see docs/wan.md)"
)


def is_local_model(model: str | os.PathLike[str]) -> bool:
    """True when ``model`` names an existing local path (otherwise it is treated as a hub id)."""
    return Path(model).expanduser().exists()


def _offline(local_files_only: bool) -> bool:
    """``local_files_only``, or the hub's offline switch as set *now* (huggingface_hub reads it only at import)."""
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return bool(local_files_only) or flag in ("1", "true", "yes", "on")


def check_model_folder(model: str | os.PathLike[str], subfolders: tuple[str, ...]) -> None:
    """For a local ``model`` folder, raise :class:`InputError` unless every one of ``subfolders`` exists in it.

    Hub ids are not checked here (they fail, with the same advice, when loaded).
    """
    if not is_local_model(model):
        return
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise InputError(f"{folder}: expected a Wan2.1-Diffusers folder, got a file; {_HOW_TO_GET}")
    for sub in subfolders:
        if not (folder / sub / ("tokenizer_config.json" if sub == "tokenizer" else "config.json")).is_file():
            raise InputError(
                f"{folder}: no {sub}/ sub-folder with a config, so this is not a Wan2.1-Diffusers folder; {_HOW_TO_GET}"
            )


def load_component(
    model: str | os.PathLike[str],
    subfolder: str,
    *,
    torch_dtype: torch.dtype | None = None,
    local_files_only: bool = False,
    revision: str | None = None,
) -> Any:
    """Load one sub-model of a Wan2.1-Diffusers model from a local folder or a hub id.

    Args:
        model: local folder laid out like ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers`` or that hub id.
        subfolder: one of :data:`WAN_SUBFOLDERS`.
        torch_dtype: parameter dtype (ignored for the tokenizer).
        local_files_only: never touch the network (also implied by ``HF_HUB_OFFLINE=1``).
        revision: hub revision (branch, tag or commit).

    Returns:
        ``WanTransformer3DModel``, ``AutoencoderKLWan``, ``UMT5EncoderModel`` or a tokenizer, on the CPU.

    Raises:
        InputError: the folder lacks the sub-folder, or the hub id cannot be loaded.
    """
    if subfolder not in WAN_SUBFOLDERS:
        raise ValueError(f"unknown Wan sub-model {subfolder!r}; expected one of {WAN_SUBFOLDERS}")
    check_model_folder(model, (subfolder,))
    source = str(Path(model).expanduser()) if is_local_model(model) else str(model)
    kwargs: dict[str, Any] = {
        "subfolder": subfolder,
        "local_files_only": _offline(local_files_only),
        "revision": revision,
    }
    try:
        if subfolder == "transformer":
            from diffusers import WanTransformer3DModel

            return WanTransformer3DModel.from_pretrained(source, torch_dtype=torch_dtype, **kwargs)
        if subfolder == "vae":
            from diffusers import AutoencoderKLWan

            return AutoencoderKLWan.from_pretrained(source, torch_dtype=torch_dtype, **kwargs)
        if subfolder == "text_encoder":
            import transformers
            from transformers import UMT5EncoderModel

            # transformers >= 4.56 renamed torch_dtype to dtype
            major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
            dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
            return UMT5EncoderModel.from_pretrained(source, **{dtype_kw: torch_dtype}, **kwargs)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:  # missing files, offline cache miss, gated repo, bad config
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load Wan {subfolder} from {source!r} ({reason}); {_HOW_TO_GET}") from e


def _is_tensor_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, Tensor) for v in obj.values())


def read_state_dict(path: str | os.PathLike[str], trust_pickle: bool = False) -> dict[str, Tensor]:
    """Tensors of a checkpoint file (``.safetensors``, or a torch pickle ``.pt``/``.pth``/``.bin``/``.ckpt``).

    Torch files are read with ``weights_only=True``. A file that holds other Python objects (the release loads its
    ``.ckpt`` with ``weights_only=False``) is refused unless ``trust_pickle`` is True; then it is loaded with
    ``weights_only=False`` (which can run code stored in the file) and a :class:`UserWarning` says so. A
    checkpoint that wraps the state dict (``{"state_dict": ...}``, ``{"model": ...}``, ``{"module": ...}``,
    ``{"ema": ...}``, ...) is unwrapped; non-tensor entries next to the parameters (a step counter, ...) are
    dropped.

    Raises:
        InputError: the file is missing, has an unknown suffix, cannot be read (or needs ``trust_pickle``), or
            holds no tensor dict.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: ST-Diff weights file not found")
    suffix = path.suffix.lower()
    if suffix not in _STATE_DICT_SUFFIXES:
        raise InputError(
            f"{path}: unknown weights format {suffix!r}; expected one of {', '.join(_STATE_DICT_SUFFIXES)}"
        )
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = _torch_load(path, trust_pickle)
    except InputError:
        raise
    except Exception as e:  # corrupt file, truncated download
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{path}: cannot read weights ({reason})") from e
    for _ in range(4):  # unwrap at most a few container levels
        if _is_tensor_dict(obj):
            return dict(obj)  # type: ignore[arg-type]
        if isinstance(obj, Mapping) and sum(isinstance(v, Tensor) for v in obj.values()) > len(obj) // 2:
            return {k: v for k, v in obj.items() if isinstance(v, Tensor)}  # parameters plus a few scalars
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in _CONTAINER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj = inner
    raise InputError(f"{path}: does not hold a state dict of tensors (a WanTransformer3DModel state dict is expected)")


def _torch_load(path: Path, trust_pickle: bool) -> object:
    """``torch.load`` with ``weights_only=True``; with ``trust_pickle`` a refused file is loaded in full."""
    import pickle
    import warnings

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        import re

        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if "unsupported global" not in str(e).lower():
            raise  # a corrupt or truncated file, not a refused object
        if not trust_pickle:
            what = f" ({found.group(1)})" if found else ""
            raise InputError(
                f"{path}: the file holds Python objects besides tensors{what}, so it loads only as a full pickle, "
                "which can run code stored in it; if you trust the file, pass --trust-checkpoint "
                "(WanConfig.trust_checkpoint=True), or convert it to .safetensors"
            ) from e
    warnings.warn(
        f"{path}: loading a full pickle (torch.load(weights_only=False)) because the checkpoint was trusted "
        "explicitly; this runs any code stored in the file",
        UserWarning,
        stacklevel=3,
    )
    return torch.load(path, map_location="cpu", weights_only=False)


def normalize_state_dict_keys(state_dict: Mapping[str, Tensor], expected: set[str] | None = None) -> dict[str, Tensor]:
    """Strip wrapper prefixes (``module.``, ``model.``, ``_orig_mod.``, ...) shared by every key.

    A prefix is removed only while *all* keys start with it, and never when the keys already match ``expected``
    (so a model whose own parameters start with ``model.`` is left alone).
    """
    sd = dict(state_dict)
    while sd:
        if expected is not None and set(sd) <= expected:
            break
        prefix = next((p for p in _KEY_PREFIXES if all(k.startswith(p) for k in sd)), None)
        if prefix is None:
            break
        sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def _preview(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(
    state_dict: Mapping[str, Tensor], reference: Mapping[str, Tensor], source: str | os.PathLike[str]
) -> None:
    """Raise :class:`InputError` unless ``state_dict`` has exactly ``reference``'s keys and shapes.

    The one-line message names the file and lists (a few of) the missing, unexpected and mis-shaped keys, with a
    hint when the file is in the original Wan (non-diffusers) layout.
    """
    missing = sorted(set(reference) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(reference))
    mis_shaped = sorted(
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(reference[k].shape)}"
        for k in set(reference) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(reference[k].shape)
    )
    if not (missing or unexpected or mis_shaped):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_preview(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_preview(unexpected)}")
    if mis_shaped:
        parts.append(f"{len(mis_shaped)} shape mismatch(es): {_preview(mis_shaped)}")
    hint = ""
    if any(".self_attn." in k or k.startswith("head.") for k in unexpected):
        hint = (
            "; this looks like the original Wan layout, convert it with diffusers' "
            "scripts/convert_wan_to_diffusers.py first"
        )
    raise InputError(f"{source}: ST-Diff weights do not match WanTransformer3DModel: {'; '.join(parts)}{hint}")


def text_encoder_id(model: str | os.PathLike[str]) -> str:
    """Identifier of a model's umT5 encoder for the prompt cache: the hub id, or the absolute local folder."""
    if is_local_model(model):
        return str(Path(model).expanduser().resolve() / "text_encoder")
    return f"{model}/text_encoder"


def prompt_cache_key(prompt: str, encoder_id: str, max_sequence_length: int) -> str:
    """SHA-256 hex digest of (prompt, encoder id, max sequence length): the cache file's name."""
    payload = json.dumps([prompt, encoder_id, int(max_sequence_length)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class PromptEmbeddingCache:
    """Prompt embeddings (1, L, D) stored as ``<directory>/<sha256>.safetensors``.

    Entries are written atomically (temporary file in the same folder, then ``os.replace``), so concurrent runs
    sharing a directory never read a half-written file.
    """

    def __init__(self, directory: str | os.PathLike[str], encoder_id: str, max_sequence_length: int) -> None:
        self.directory = Path(directory).expanduser()
        self.encoder_id = encoder_id
        self.max_sequence_length = int(max_sequence_length)

    def path(self, prompt: str) -> Path:
        """File that holds (or would hold) the embedding of ``prompt``."""
        return self.directory / f"{prompt_cache_key(prompt, self.encoder_id, self.max_sequence_length)}.safetensors"

    def get(self, prompt: str) -> Tensor | None:
        """The cached embedding (1, L, D) on the CPU, or None on a miss."""
        path = self.path(prompt)
        if not path.is_file():
            return None
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")["embeds"]
        except Exception as e:
            raise InputError(f"{path}: corrupt prompt-embedding cache entry ({e}); delete it to re-encode") from e

    def put(self, prompt: str, embeds: Tensor) -> Path:
        """Store ``embeds`` (1, L, D) for ``prompt``; returns the file written."""
        from safetensors.torch import save_file

        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(prompt)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=self.directory)
        os.close(fd)
        try:
            metadata = {
                "prompt": prompt,
                "encoder_id": self.encoder_id,
                "max_sequence_length": str(self.max_sequence_length),
            }
            save_file({"embeds": embeds.detach().to("cpu").contiguous()}, tmp, metadata=metadata)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path


def load_stdiff_transformer(
    model: str | os.PathLike[str],
    weights: str | os.PathLike[str] | None,
    *,
    torch_dtype: torch.dtype,
    local_files_only: bool = False,
    revision: str | None = None,
    trust_pickle: bool = False,
) -> Any:
    """The ST-Diff ``WanTransformer3DModel``: Wan's architecture from ``model`` with the WorldWarp weights.

    Args:
        model: Wan2.1-Diffusers folder or hub id; its ``transformer/config.json`` gives the architecture (and, when
            ``weights`` is None, the base Wan weights, which know nothing about per-token noise levels).
        weights: the released ST-Diff state dict (a file, loaded strictly after stripping wrapper prefixes), or
            a diffusers ``transformer`` folder (``config.json`` + safetensors), or None.
        torch_dtype: parameter dtype of the returned model.
        trust_pickle: see :func:`read_state_dict`.

    Raises:
        InputError: missing model or weights, unreadable file, or keys/shapes that do not match the architecture.
    """
    if weights is None:
        return load_component(
            model, "transformer", torch_dtype=torch_dtype, local_files_only=local_files_only, revision=revision
        )
    from diffusers import WanTransformer3DModel

    weights_path = Path(weights).expanduser()
    if weights_path.is_dir():
        try:
            return WanTransformer3DModel.from_pretrained(str(weights_path), torch_dtype=torch_dtype)
        except (OSError, ValueError) as e:
            raise InputError(f"{weights_path}: not a diffusers WanTransformer3DModel folder ({e})") from e
    state_dict = read_state_dict(weights_path, trust_pickle)  # before the model config: a bad file fails fast
    check_model_folder(model, ("transformer",))
    source = str(Path(model).expanduser()) if is_local_model(model) else str(model)
    try:
        config = WanTransformer3DModel.load_config(
            source, subfolder="transformer", local_files_only=_offline(local_files_only), revision=revision
        )
    except (OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load the Wan transformer config from {source!r} ({reason}); {_HOW_TO_GET}") from e
    from accelerate import init_empty_weights

    with init_empty_weights():  # parameters on the meta device: no 1.3B random init, no double memory
        transformer = WanTransformer3DModel.from_config(config)
    reference = transformer.state_dict()
    state_dict = normalize_state_dict_keys(state_dict, expected=set(reference))
    check_state_dict(state_dict, reference, weights_path)
    transformer.load_state_dict(state_dict, strict=True, assign=True)
    return cast_parameters(transformer, torch_dtype).eval()


def cast_parameters(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast floating parameters to ``dtype`` in place, keeping the model's ``_keep_in_fp32_modules`` in float32.

    This is what diffusers' ``from_pretrained(torch_dtype=...)`` does for Wan (its time embedder, modulation tables,
    norms and rotary embedding stay float32); a plain ``module.to(dtype)`` would cast those too.
    """
    keep = tuple(getattr(module, "_keep_in_fp32_modules", None) or ())
    for name, param in module.named_parameters():
        if not param.is_floating_point():
            continue
        target = torch.float32 if any(k in name.split(".") for k in keep) else dtype
        if param.dtype != target:
            param.data = param.data.to(target)
    return module
