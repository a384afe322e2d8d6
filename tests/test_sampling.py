import dataclasses
from pathlib import Path

import pytest
import torch

from hidd.config import SamplerConfig, load_config
from hidd.sampling import PREDICTORS, sample, sample_grid
from hidd.sampling.correctors import LangevinCorrector, per_image_norm
from hidd.sde import VESDE

PRESETS = Path(__file__).resolve().parent.parent / "configs" / "presets"
MU, S = 0.5, 0.2  # data ~ N(MU, S² I): its score at noise σ is known exactly


def gaussian_score(x, sigma):
    return -(x - MU) / (S**2 + sigma[:, None, None, None] ** 2)


def free_sampler(**changes) -> SamplerConfig:
    """Unconditional sampler, no paper-specific tricks."""
    base = dict(corrector="none", consistency="none", alpha_after_predictor=0.0, minmax_normalize=False,
                carry_mean=False, snr=0.16, corrector_chains=1)
    return SamplerConfig(**{**base, **changes})


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("changes", [
    dict(predictor="reverse_diffusion"),
    dict(predictor="reverse_diffusion", corrector="langevin"),
    dict(predictor="euler_maruyama"),
], ids=["P", "P+C", "EM"])
def test_gaussian_data_is_recovered(changes):
    n = 300
    sde = VESDE(0.01, 20.0, n)
    cfg = free_sampler(num_steps=n, **changes)
    # No clamping inside [0, 1] matters: MU ± 5 S stays inside.
    x = sample(sde, gaussian_score, cfg, shape=(64, 1, 8, 8), generator=gen(0)).x
    assert x.mean().item() == pytest.approx(MU, abs=0.05 * S)
    assert x.std().item() == pytest.approx(S, rel=0.06)


def test_consistency_alone_converges_to_y_geometrically():
    n, alpha = 60, 0.1
    sde = VESDE(0.01, 20.0, n)
    y = torch.rand(4, 1, 4, 4, generator=gen(1))
    cfg = free_sampler(predictor="none", consistency="interpolate", alpha=alpha, num_steps=n)
    x_start = sde.prior_sampling(y.shape, generator=gen(2))  # the sampler's first draw
    iterates = {}
    result = sample(sde, gaussian_score, cfg, y=y, generator=gen(2), callback=lambda i, x: iterates.update({i: x}))
    for i in (0, 10, n - 1):
        expected = y + (1 - alpha) ** (i + 1) * (x_start - y)
        assert torch.allclose(iterates[i], expected, atol=1e-5, rtol=1e-4)
    long_cfg = dataclasses.replace(cfg, num_steps=200)
    long = sample(VESDE(0.01, 20.0, 200), gaussian_score, long_cfg, y=y, generator=gen(2))
    assert (long.x - y).abs().max().item() < 1e-3
    assert result.nfe == 0


def test_nfe_counts_network_evaluations_per_image():
    n = 10
    sde = VESDE(0.01, 20.0, n)
    y = torch.rand(2, 1, 4, 4)
    p = free_sampler(predictor="reverse_diffusion", num_steps=n)
    pc = dataclasses.replace(p, corrector="langevin", corrector_steps=2, corrector_chains=3)
    none = dataclasses.replace(p, predictor="none", consistency="interpolate")
    assert sample(sde, gaussian_score, p, shape=y.shape, generator=gen(0)).nfe == n
    assert sample(sde, gaussian_score, pc, shape=y.shape, generator=gen(0)).nfe == n * (1 + 2 * 3)
    assert sample(sde, gaussian_score, none, y=y, generator=gen(0)).nfe == 0


def test_paper_settings_run_and_stay_in_range():
    n = 50
    cfg = load_config(PRESETS / "paper.yaml").sampler
    cfg = dataclasses.replace(cfg, num_steps=n)
    y = torch.rand(2, 1, 8, 8, generator=gen(3))
    result = sample(VESDE(0.01, 50.0, n), gaussian_score, cfg, y=y, generator=gen(0))
    assert result.nfe == n * 4  # predictor + 3 chains
    assert result.x.shape == y.shape and 0 <= result.x.min() and result.x.max() <= 1


def test_same_seed_same_output_different_seed_different():
    n = 40
    sde = VESDE(0.01, 20.0, n)
    cfg = free_sampler(predictor="reverse_diffusion", corrector="langevin", corrector_chains=3,
                       consistency="interpolate", alpha_after_predictor=0.05, num_steps=n)
    y = torch.rand(2, 1, 4, 4, generator=gen(4))
    a, b, c = (sample(sde, gaussian_score, cfg, y=y, generator=gen(s)).x for s in (7, 7, 8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_langevin_step_size_is_per_image():
    sde = VESDE(0.01, 20.0, 10)
    scale = torch.tensor([1.0, 100.0])[:, None, None, None]  # image 1's score is 100 times larger
    corrector = LangevinCorrector(sde, lambda x, sigma: -x * scale, snr=0.16)
    x = torch.randn(2, 1, 8, 8, generator=gen(5))
    t = torch.full((2,), 0.5)
    new_x, x_mean = corrector.update(x, x, t, sde.sigma(t), gen(6))
    s = -x * scale
    eps = ((x_mean - x) / s).flatten(1).mean(dim=1)
    z = (new_x - x_mean) / torch.sqrt(2 * eps)[:, None, None, None]
    assert torch.allclose(eps, 2 * (0.16 * per_image_norm(z) / per_image_norm(s)) ** 2, rtol=1e-4)
    assert eps[0] / eps[1] > 1e3


def test_unknown_names_raise_listing_valid_ones():
    with pytest.raises(ValueError, match="euler_maruyama, none, reverse_diffusion"):
        sample(VESDE(), gaussian_score, SamplerConfig(predictor="heun"), shape=(1, 1, 4, 4))
    with pytest.raises(ValueError, match="langevin"):
        sample(VESDE(), gaussian_score, SamplerConfig(corrector="ald"), shape=(1, 1, 4, 4))
    with pytest.raises(ValueError, match="interpolate"):
        sample(VESDE(), gaussian_score, SamplerConfig(consistency="prox"), shape=(1, 1, 4, 4))
    assert PREDICTORS.names() == ["euler_maruyama", "none", "reverse_diffusion"]


def test_misuse_is_reported():
    with pytest.raises(ValueError, match="num_scales"):  # reverse diffusion needs the SDE's own grid
        sample(VESDE(num_scales=1000), gaussian_score, free_sampler(num_steps=100), shape=(1, 1, 4, 4))
    with pytest.raises(ValueError, match="measurement"):
        sample(VESDE(num_scales=10), gaussian_score, free_sampler(num_steps=10, consistency="interpolate"),
               shape=(1, 1, 4, 4))


def test_presets_load_and_ablations_differ_only_in_switches():
    names = ["paper", "ablation-p", "ablation-pc", "ablation-pdc", "ablation-pcdc"]
    assert set(names) <= {p.stem for p in PRESETS.glob("*.yaml")}
    cfgs = {name: load_config(PRESETS / f"{name}.yaml").sampler for name in names}
    switches = {name: (c.predictor, c.corrector, c.consistency) for name, c in cfgs.items()}
    assert switches == {
        "paper": ("reverse_diffusion", "langevin", "interpolate"),
        "ablation-p": ("reverse_diffusion", "none", "none"),
        "ablation-pc": ("reverse_diffusion", "langevin", "none"),
        "ablation-pdc": ("reverse_diffusion", "none", "interpolate"),
        "ablation-pcdc": ("reverse_diffusion", "langevin", "interpolate"),
    }
    rest = {name: {k: v for k, v in dataclasses.asdict(c).items() if k not in ("predictor", "corrector", "consistency")}
            for name, c in cfgs.items()}
    assert all(r == rest["paper"] for r in rest.values())
    paper = cfgs["paper"]
    assert (paper.snr, paper.corrector_chains, paper.alpha_after_predictor, paper.alpha) == (0.021, 3, 0.08, 0.15)
    assert paper.minmax_normalize and paper.num_steps == 1000 and paper.t_end == 1e-5


def test_sample_grid_is_in_unit_range():
    class Gaussian(torch.nn.Module):
        def forward(self, x, sigma):
            return gaussian_score(x, sigma)

    images = sample_grid(Gaussian(), VESDE(0.01, 20.0, 1000), shape=(3, 1, 8, 8), num_steps=50, seed=0, device="cpu")
    assert images.shape == (3, 1, 8, 8)
    assert 0 <= images.min() and images.max() <= 1
