"""The suite benchmarks' shared helpers (benchmarks/suite_eval.py), loaded from their file."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

SUITE_EVAL = Path(__file__).resolve().parents[1] / "benchmarks" / "suite_eval.py"


@pytest.fixture(scope="module")
def suite_eval() -> ModuleType:
    spec = importlib.util.spec_from_file_location("suite_eval", SUITE_EVAL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_weights_digest_tracks_every_weight(suite_eval: ModuleType) -> None:
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    b = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    b.load_state_dict(a.state_dict())
    digest = suite_eval.weights_digest(a)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert suite_eval.weights_digest(b) == digest  # same weights, different object
    with torch.no_grad():
        b[1].bias[2] += 1e-6  # one value of the last layer
    assert suite_eval.weights_digest(b) != digest
    assert suite_eval.weights_digest(a.double()) != digest  # dtype is part of the identity


def test_parse_size_and_mean_finite(suite_eval: ModuleType) -> None:
    assert suite_eval.parse_size("64x96") == (64, 96)
    assert suite_eval.mean_finite([1.0, float("nan"), 3.0, float("inf")]) == 2.0
    assert suite_eval.mean_finite([float("nan")]) != suite_eval.mean_finite([float("nan")])  # nan
