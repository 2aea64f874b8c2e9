"""Shared fixtures and markers: ``slow`` runs only with --runslow, ``gpu`` only with CUDA."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow to run")
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $WORLDWARP_DATA); the test is skipped when it is absent."""
    root = Path(os.environ.get("WORLDWARP_DATA", SHARED_DATA))
    if not root.is_dir():
        pytest.skip(f"development data not found at {root}")
    return root


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run the test single-threaded (small rasteriser/stereo workloads: faster and reproducible on a shared
    machine); modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random-weight ST-Diff checkpoint folder (seeded), for end-to-end CLI tests."""
    from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = TinyDenoiser(TinyDenoiserConfig(width=16, depth=1, heads=2, freq_dim=8, widths=(8, 16, 16)))
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random 60x90 RGB PNG (seeded) as a start image."""
    import numpy as np
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "start.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(path)
    return str(path)


def train_denoiser(*argv: str):  # noqa: ANN201
    """The denoiser ``worldwarp train ARGV`` would build: its real parser (so every flag has its default), then
    ``worldwarp.cli.train._denoiser``; the required dataset, steps and output flags are filled in."""
    import argparse

    from worldwarp.cli.train import _denoiser, add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--dataset", "procedural", "--steps", "1", "--out", "unused", *argv])
    return _denoiser(args)
