"""Golden values for the flow-matching schedule, start levels, per-token noise maps and the Euler step."""

from __future__ import annotations

import math

import pytest
import torch

from worldwarp.diffusion.latent_grid import initial_levels, reduce_mask_to_patches, warp_token_mask
from worldwarp.diffusion.schedule import (
    euler_step,
    flow_sigmas,
    levels_at,
    renoise_step,
    shift_sigmas,
    sigma_for_strength,
    start_index,
)


def test_flow_sigmas_golden_values() -> None:
    # linspace(1, 0, 5) = 1, .75, .5, .25, 0 shifted by 5: 5s / (1 + 4s)
    assert flow_sigmas(4, 5.0).tolist() == pytest.approx([1.0, 0.9375, 5 / 6, 0.625, 0.0], abs=1e-15)
    s = flow_sigmas(50, 5.0)
    assert s.shape == (51,) and s.dtype == torch.float64
    assert s[0] == 1.0 and s[-1] == 0.0
    assert bool((s[1:] < s[:-1]).all())
    assert float(s[10]) == pytest.approx(20 / 21, abs=1e-15)
    assert float(s[49]) == pytest.approx(5 * 0.02 / (1 + 4 * 0.02), abs=1e-15)
    # shift 1 is the plain linear grid
    assert torch.equal(flow_sigmas(10, 1.0), torch.linspace(1, 0, 11, dtype=torch.float64))


def test_flow_sigmas_match_diffusers_scheduler() -> None:
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=5.0)
    for steps in (10, 50):
        grid = torch.linspace(1, 0, steps + 1, dtype=torch.float64)[:-1].numpy()
        sched.set_timesteps(sigmas=grid)
        ours = flow_sigmas(steps, 5.0)
        torch.testing.assert_close(sched.sigmas.double(), ours, atol=1e-6, rtol=0)
        torch.testing.assert_close(sched.timesteps.double(), ours[:-1] * 1000, atol=1e-3, rtol=0)


def test_shift_sigmas_fixed_points_and_error() -> None:
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    assert shift_sigmas(t, 3.0).tolist() == [0.0, 0.75, 1.0]
    with pytest.raises(ValueError):
        shift_sigmas(t, 0.0)


@pytest.mark.parametrize(
    ("strength", "steps", "index"),
    [(1.0, 50, 0), (0.8, 50, 10), (0.6, 50, 20), (0.5, 50, 25), (0.0, 50, 50), (0.01, 50, 49), (0.7, 10, 3)],
)
def test_start_index(strength: float, steps: int, index: int) -> None:
    assert start_index(strength, steps) == index


def test_sigma_for_strength_golden() -> None:
    assert sigma_for_strength(0.8, 50) == pytest.approx(20 / 21, abs=1e-15)
    assert sigma_for_strength(0.6, 50) == pytest.approx(15 / 17, abs=1e-15)
    assert sigma_for_strength(0.5, 50) == pytest.approx(5 / 6, abs=1e-15)
    assert sigma_for_strength(1.0, 20) == 1.0
    assert sigma_for_strength(0.0, 20) == 0.0  # no revision: warped tokens are clean, like history
    with pytest.raises(ValueError):
        start_index(1.5, 50)
    with pytest.raises(ValueError):
        flow_sigmas(0)


def test_reduce_mask_to_patches_requires_all_cells() -> None:
    m = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    m[0, 0, 0, 3] = False  # one bad cell in the top-right patch
    out = reduce_mask_to_patches(m, 2)
    assert out.tolist() == [[[[True, False], [True, True]]]]
    assert torch.equal(reduce_mask_to_patches(m, 1), m)
    with pytest.raises(ValueError):
        reduce_mask_to_patches(torch.ones(1, 1, 3, 4, dtype=torch.bool), 2)


def _example_masks() -> tuple[torch.Tensor, torch.Tensor]:
    # B=1, T'=3 (frame 0 history), 2x3 tokens
    m = torch.tensor(
        [
            [[False, False, False], [False, False, False]],  # history frame: its mask must not matter
            [[True, True, False], [True, True, True]],  # 5/6 valid
            [[True, False, False], [True, True, False]],  # 3/6 valid: not "more than half"
        ]
    )[None]
    hist = torch.tensor([[True, False, False]])
    return m, hist


def test_noise_modes_golden() -> None:
    m, hist = _example_masks()
    assert torch.equal(warp_token_mask(m, hist, "spatiotemporal"), m)
    assert bool(warp_token_mask(m, hist, "full").all())
    spatial = warp_token_mask(m, hist, "spatial")
    expected = torch.tensor([[True, False, False], [True, True, False]])
    for t in range(3):
        assert torch.equal(spatial[0, t], expected)
    temporal = warp_token_mask(m, hist, "temporal")
    assert temporal[0, 1].all() and not temporal[0, 2].any()
    with pytest.raises(ValueError):
        warp_token_mask(m, hist, "bogus")  # type: ignore[arg-type]


def test_initial_levels_values() -> None:
    m, hist = _example_masks()
    s = 0.9
    lv = initial_levels(m, hist, s, patch_size=1)
    assert lv.dtype == torch.float64
    assert bool((lv[0, 0] == 0).all())
    torch.testing.assert_close(lv[0, 1:], torch.where(m[0, 1:], s, 1.0).double())
    # full: every non-history token at sigma_w, holes included
    full = initial_levels(m, hist, s, patch_size=1, mode="full")
    assert bool((full[0, 0] == 0).all()) and bool((full[0, 1:] == s).all())
    # patch reduction: a 4x6 cell mask with one hole cell makes its whole 2x2 patch a hole
    cells = torch.ones(1, 1, 4, 6, dtype=torch.bool)
    cells[0, 0, 3, 5] = False
    lv = initial_levels(cells, torch.tensor([[False]]), s, patch_size=2)
    assert lv.shape == (1, 1, 2, 3)
    assert lv[0, 0].tolist() == [[s, s, s], [s, s, 1.0]]


def test_levels_at_waits_then_follows() -> None:
    sig = flow_sigmas(10)
    lv0 = torch.tensor([0.0, float(sig[3]), 1.0], dtype=torch.float64)
    traj = torch.stack([levels_at(lv0, sig[i]) for i in range(11)])
    assert bool((traj[:, 0] == 0).all())
    assert bool((traj[:4, 1] == sig[3]).all()) and torch.equal(traj[3:, 1], sig[3:])
    assert torch.equal(traj[:, 2], sig)


def test_euler_step_untouched_where_level_constant() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 1, 2, 2, generator=g)
    v = torch.randn(1, 2, 1, 2, 2, generator=g)
    v[0, :, 0, 0, 0] = math.nan  # a non-moving token must stay bit-exact even with a garbage velocity
    cur = torch.tensor([[[[0.5, 0.5], [0.8, 0.0]]]])
    nxt = torch.tensor([[[[0.5, 0.25], [0.6, 0.0]]]])
    out = euler_step(x, v, cur, nxt)
    assert torch.equal(out[0, :, 0, 0, 0], x[0, :, 0, 0, 0])
    assert torch.equal(out[0, :, 0, 1, 1], x[0, :, 0, 1, 1])
    torch.testing.assert_close(out[0, :, 0, 0, 1], x[0, :, 0, 0, 1] - 0.25 * v[0, :, 0, 0, 1])
    torch.testing.assert_close(out[0, :, 0, 1, 0], x[0, :, 0, 1, 0] - 0.2 * v[0, :, 0, 1, 0])


def test_renoise_step_golden_values() -> None:
    x = torch.tensor([1.0, 1.0, 1.0, 1.0]).reshape(1, 1, 1, 2, 2)
    v = torch.tensor([0.5, 0.5, math.nan, -1.0]).reshape(1, 1, 1, 2, 2)
    noise = torch.tensor([2.0, 2.0, 2.0, 2.0]).reshape(1, 1, 1, 2, 2)
    cur = torch.tensor([[[[0.8, 0.8], [0.5, 0.4]]]])
    nxt = torch.tensor([[[[0.5, 0.0], [0.5, 0.25]]]])
    out = renoise_step(x, v, cur, nxt, noise).flatten().tolist()
    # x0 = 1 - 0.8 * 0.5 = 0.6 -> 0.5 * 0.6 + 0.5 * 2 = 1.3; at level 0 the clean estimate itself; a waiting token
    # is kept bit-exact (even with a NaN velocity); x0 = 1 + 0.4 = 1.4 -> 0.75 * 1.4 + 0.25 * 2 = 1.55
    assert out == pytest.approx([1.3, 0.6, 1.0, 1.55], abs=1e-6)
