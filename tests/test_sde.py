import math

import pytest
import torch

from hidd.config import SDEConfig
from hidd.sde import VESDE, build_sde


def test_discrete_sigmas_match_continuous():
    sde = VESDE(0.01, 300.0, 1000)
    i = torch.arange(1000)
    t = i / 999
    assert torch.allclose(sde.sigma(t.double()), sde.discrete_sigmas, rtol=1e-4)
    assert sde.discrete_sigmas[0] == pytest.approx(0.01) and sde.discrete_sigmas[-1] == pytest.approx(300.0)
    ratios = sde.discrete_sigmas[1:] / sde.discrete_sigmas[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))  # geometric


def test_marginal_std_matches_empirical():
    sde = VESDE(0.01, 50.0, 100)
    x0 = torch.full((4000, 1, 2, 2), 0.3)
    t = torch.full((4000,), 0.6)
    mean, std = sde.marginal_prob(x0, t)
    xt = mean + std.view(-1, 1, 1, 1) * torch.randn_like(x0)
    expected = 0.01 * (50.0 / 0.01) ** 0.6
    assert std[0].item() == pytest.approx(expected)
    assert xt.std().item() == pytest.approx(expected, rel=0.03)
    assert xt.mean().item() == pytest.approx(0.3, abs=0.05 * expected)


def test_prior_sampling_std_is_sigma_max():
    sde = VESDE(0.01, 300.0, 10)
    x = sde.prior_sampling((8, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    assert x.std().item() == pytest.approx(300.0, rel=0.05)


def test_reverse_diffusion_step_size():
    sde = VESDE(0.01, 300.0, 1000)
    x = torch.zeros(2, 1, 4, 4)
    for i in (0, 1, 500, 999):
        _, G = sde.discretize(x, torch.full((2,), i))
        prev = sde.discrete_sigmas[i - 1] if i > 0 else 0.0
        assert G[0].item() == pytest.approx(math.sqrt(sde.discrete_sigmas[i] ** 2 - prev**2), rel=1e-5)


def test_continuous_diffusion_integrates_to_marginal_variance():
    # ∫_0^t g(s)^2 ds = σ(t)^2 − σ(0)^2 for the VE-SDE.
    sde = VESDE(0.01, 300.0, 1000)
    s = torch.linspace(0, 0.7, 20001, dtype=torch.float64)
    _, g = sde.sde(torch.zeros(1), s)
    integral = torch.trapezoid(g**2, s).item()
    assert integral == pytest.approx(sde.sigma(torch.tensor(0.7)).item() ** 2 - 0.01**2, rel=1e-4)


def test_build_sde_rejects_unknown_and_bad_range():
    with pytest.raises(ValueError, match="unknown SDE"):
        build_sde(SDEConfig(name="vp"))
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        VESDE(1.0, 0.5, 10)


def test_discretize_refuses_levels_outside_the_grid():
    sde = VESDE(0.01, 300.0, 10)
    with pytest.raises(ValueError, match="outside 0..9"):
        sde.discretize(torch.zeros(1, 1, 2, 2), torch.tensor([10]))
