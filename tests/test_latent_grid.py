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


def test_strict_single_hole_invalidates_exactly_its_cell() -> None:
    t, h, w = 9, 16, 24
    for frame, (i, j), lat_t in [(0, (5, 7), 0), (1, (0, 0), 1), (4, (15, 23), 1), (5, (8, 8), 2), (8, (9, 17), 2)]:
        mask = torch.ones(t, h, w, dtype=torch.bool)
        mask[frame, i, j] = False
        lat = pixel_mask_to_cells(mask, time_factor=4, space_factor=8)
        assert lat.shape == (3, 2, 3)
        expected = torch.ones(3, 2, 3, dtype=torch.bool)
        expected[lat_t, i // 8, j // 8] = False
        assert torch.equal(lat, expected), (frame, i, j)


def test_strict_time_grouping_and_batch() -> None:
    # T = 1 + 4k -> 1 + k latent frames; trailing frames that do not fill a group are dropped
    for t, expected in [(1, 1), (5, 2), (13, 4), (49, 13), (50, 13), (52, 13), (53, 14)]:
        assert pixel_mask_to_cells(torch.ones(t, 8, 8, dtype=torch.bool), 4, 8).shape == (expected, 1, 1)
    # time factor 1 keeps every frame; space factor 1 keeps every pixel
    m = torch.rand(2, 5, 6, 4, generator=torch.Generator().manual_seed(0)) > 0.3
    assert torch.equal(pixel_mask_to_cells(m, 1, 1), m)
    # batched input equals per-item results; the first frame never mixes with the second
    lat = pixel_mask_to_cells(m, 2, 2)
    assert lat.shape == (2, 3, 3, 2)
    for b in range(2):
        ref = torch.stack([m[b, 0], m[b, 1] & m[b, 2], m[b, 3] & m[b, 4]])
        ref = ref.reshape(3, 3, 2, 2, 2).all(dim=-1).all(dim=-2)
        assert torch.equal(lat[b], ref)
    with pytest.raises(ValueError):
        pixel_mask_to_cells(torch.ones(5, 10, 16, dtype=torch.bool), 4, 8)


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
