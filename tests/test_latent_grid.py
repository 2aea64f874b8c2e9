"""The latent-grid rules: pixel mask -> cells (strict / release), history latent frames, start and model levels."""

from __future__ import annotations

import pytest
import torch

from worldwarp.diffusion.latent_grid import history_latent_frames, model_levels, pixel_mask_to_cells, start_levels


def test_release_reduction_samples_frame_4k_and_the_top_left_pixel() -> None:
    mask = torch.zeros(9, 16, 24, dtype=torch.bool)
    mask[0, 0, 8] = True  # frame 0, pixel (0, 8) -> cell (0, 1)
    mask[4, 8, 16] = True  # frame 4 (latent 1), pixel (8, 16) -> cell (1, 2)
    mask[3, 8, 16] = True  # frame 3 is not sampled
    mask[8, 9, 0] = True  # not a top-left pixel
    cells = pixel_mask_to_cells(mask, 4, 8, "release")
    assert cells.shape == (3, 2, 3)
    expected = torch.zeros(3, 2, 3, dtype=torch.bool)
    expected[0, 0, 1] = True
    expected[1, 1, 2] = True
    assert torch.equal(cells, expected)
    # a batch dimension and dropped trailing frames (T = 11 -> 3 latent frames)
    batch = torch.stack([mask, ~mask])
    assert pixel_mask_to_cells(batch, 4, 8, "release").shape == (2, 3, 2, 3)
    assert pixel_mask_to_cells(torch.ones(11, 16, 24, dtype=torch.bool), 4, 8, "release").shape == (3, 2, 3)


def test_strict_reduction_needs_every_pixel_of_every_frame() -> None:
    mask = torch.ones(5, 16, 16, dtype=torch.bool)
    mask[2, 15, 15] = False  # one pixel of frame 2 (latent 1), cell (1, 1)
    strict = pixel_mask_to_cells(mask, 4, 8, "strict")
    assert strict.sum() == 2 * 4 - 1 and not bool(strict[1, 1, 1])
    assert bool(pixel_mask_to_cells(mask, 4, 8, "release").all())  # frame 2 is not sampled by the release
    with pytest.raises(ValueError, match="rule"):
        pixel_mask_to_cells(mask, 4, 8, "loose")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multiple"):
        pixel_mask_to_cells(torch.ones(5, 12, 16, dtype=torch.bool), 4, 8, "release")


@pytest.mark.parametrize(("n", "expected"), [(1, 1), (4, 1), (5, 2), (8, 2), (9, 3), (81, 21)])
def test_history_latent_frames(n: int, expected: int) -> None:
    hist = history_latent_frames(n, 21, 4)
    assert int(hist.sum()) == expected and bool(hist[:expected].all())
    with pytest.raises(ValueError):
        history_latent_frames(0, 3, 4)


def test_start_and_model_levels_per_rule() -> None:
    cells = torch.zeros(1, 2, 2, 4, dtype=torch.bool)
    cells[0, 1, 0, 0] = True  # one warped cell in patch (0, 0) of frame 1
    cells[0, 1, :, 2:] = True  # patch (0, 1) of frame 1 fully warped
    hist = torch.tensor([[True, False]])
    strict = start_levels(cells, hist, 0.5, 2, "strict")
    release = start_levels(cells, hist, 0.5, 2, "release")
    assert bool((strict[0, 0] == 0).all()) and bool((release[0, 0] == 0).all())
    assert strict[0, 1].tolist() == [[1.0, 1.0, 0.5, 0.5], [1.0, 1.0, 0.5, 0.5]]
    assert release[0, 1].tolist() == [[0.5, 1.0, 0.5, 0.5], [1.0, 1.0, 0.5, 0.5]]
    assert model_levels(strict, 2, "strict")[0, 1].tolist() == [[1.0, 0.5]]
    assert model_levels(release, 2, "release")[0, 1].tolist() == [[0.5, 0.5]]  # top-left cell of each patch
    with pytest.raises(ValueError, match="uniform"):
        model_levels(release, 2, "strict")
