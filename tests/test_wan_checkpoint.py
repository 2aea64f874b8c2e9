"""The release's checkpoint formats: a plain state dict, a container, and pickles that need an explicit trust flag."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from worldwarp.diffusion.denoisers.wan_loading import read_state_dict
from worldwarp.errors import InputError


def _sd() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"patch_embedding.weight": torch.randn(4, 3, generator=g), "proj_out.bias": torch.randn(4, generator=g)}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_plain_state_dict_and_containers(tmp_path: Path) -> None:
    sd = _sd()
    torch.save(sd, tmp_path / "plain.ckpt")
    torch.save({"state_dict": sd, "epoch": 3, "global_step": 10}, tmp_path / "lightning.ckpt")
    torch.save({**sd, "step": 1000}, tmp_path / "with_step.pt")
    for name in ("plain.ckpt", "lightning.ckpt", "with_step.pt"):
        assert _equal(read_state_dict(tmp_path / name), sd), name


def test_pickle_needs_the_trust_flag(tmp_path: Path) -> None:
    sd = _sd()
    path = tmp_path / "worldwarp_latest.ckpt"
    torch.save({"state_dict": sd, "args": argparse.Namespace(lr=5e-5)}, path)  # an object weights_only refuses
    with pytest.raises(InputError, match="--trust-checkpoint") as err:
        read_state_dict(path)
    assert "\n" not in str(err.value)
    with pytest.warns(UserWarning, match="full pickle"):
        loaded = read_state_dict(path, trust_pickle=True)
    assert _equal(loaded, sd)


def test_trusted_safe_file_loads_without_warning(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    torch.save(_sd(), tmp_path / "plain.pt")
    assert _equal(read_state_dict(tmp_path / "plain.pt", trust_pickle=True), _sd())
    assert not [w for w in recwarn if "pickle" in str(w.message)]
