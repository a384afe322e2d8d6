"""The paper's predictor–corrector path: level bookkeeping, corrector level, normalisation, refused settings."""
import dataclasses
from pathlib import Path

import pytest
import torch

from hidd.config import SamplerConfig, load_config
from hidd.sampling import pc
from hidd.sampling.base import PREDICTORS, CORRECTORS, Corrector, Predictor
from hidd.sampling.correctors import LangevinCorrector
from hidd.sde import VESDE

PRESETS = Path(__file__).resolve().parent.parent / "configs" / "presets"


def gen(seed):
    return torch.Generator().manual_seed(seed)


def zero_score(x, sigma):
    return torch.zeros_like(x)


@pytest.fixture
def recorders():
    """A predictor and a corrector that record what the loop hands them (registered for one test)."""
    seen = {"levels": [], "G": [], "sigma_c": [], "dt": [], "order": []}

    class Recording(Predictor):
        def update(self, x, step, generator=None):
            seen["levels"].append(int(step.level[0]))
            seen["G"].append(float(self.sde.discretize(x, step.level)[1][0]))
            seen["dt"].append(float((step.t_next - step.t)[0]))
            seen["order"].append("P")
            return x, x

    class RecordingCorrector(Corrector):
        def update(self, x, x_mean, t, sigma, generator=None):
            seen["sigma_c"].append(float(sigma[0]))
            seen["order"].append("C")
            return x, x_mean

    PREDICTORS.register("recording")(Recording)
    CORRECTORS.register("recording")(RecordingCorrector)
    yield seen
    PREDICTORS._classes.pop("recording")
    CORRECTORS._classes.pop("recording")


@pytest.mark.parametrize("n", [10, 1000])
@pytest.mark.parametrize("t_end", [1e-5, 5e-4, 2e-3, 0.05])
def test_every_level_is_stepped_once_and_the_last_ends_at_sigma_zero(recorders, n, t_end):
    sde = VESDE(0.01, 50.0, n)
    cfg = SamplerConfig(predictor="recording", corrector="recording", consistency="none", num_steps=n, t_end=t_end)
    pc.sample(sde, zero_score, cfg, shape=(1, 1, 2, 2), generator=gen(0))
    assert recorders["levels"] == list(range(n - 1, -1, -1))  # round() put two iterations on one level
    assert recorders["G"][-1] == pytest.approx(0.01, rel=1e-5)  # G_0 = σ_min: from σ_min to 0
    assert sum(recorders["dt"]) == pytest.approx(-1.0, abs=1e-6)  # Euler–Maruyama's steps span t = 1 … 0
    assert recorders["dt"][0] == pytest.approx(-(1 - t_end) / (n - 1), rel=1e-4)


@pytest.mark.parametrize("n", [10, 1000])
def test_corrector_runs_at_the_level_the_predictor_reached(recorders, n):
    sde = VESDE(0.01, 50.0, n)
    cfg = SamplerConfig(predictor="recording", corrector="recording", consistency="none", num_steps=n)
    pc.sample(sde, zero_score, cfg, shape=(1, 1, 2, 2), generator=gen(0))
    times = torch.linspace(1.0, cfg.t_end, n)
    expected = sde.sigma(torch.cat([times[1:], times[-1:]]))  # σ(t_{i+1}); the last at σ(t_end)
    assert torch.allclose(torch.tensor(recorders["sigma_c"]), expected.float(), rtol=1e-5)
    assert recorders["order"][:4] == ["P", "C", "P", "C"]


def test_corrector_first_order_is_score_sde(recorders):
    sde = VESDE(0.01, 50.0, 10)
    cfg = SamplerConfig(predictor="recording", corrector="recording", consistency="none", num_steps=10,
                        order="corrector_first")
    pc.sample(sde, zero_score, cfg, shape=(1, 1, 2, 2), generator=gen(0))
    assert recorders["order"][:4] == ["C", "P", "C", "P"]
    assert recorders["sigma_c"][0] == pytest.approx(50.0, rel=1e-5)  # at the iteration's own level


def test_normalisation_keeps_colour_ratios_and_the_photo_range():
    y = torch.stack([torch.linspace(0.2, 0.6, 16), torch.linspace(0.1, 0.3, 16), torch.linspace(0.15, 0.45, 16)])
    y = y.reshape(1, 3, 4, 4)
    as_channels = y.reshape(3, 1, 4, 4)  # a 1-channel prior sees the photo's channels as three images
    distorted = 2.0 * as_channels - 0.7  # an affine distortion of the whole photo
    out = pc.normalize_to_range(distorted, as_channels, images_per_photo=3)
    assert torch.allclose(out, as_channels, atol=1e-6)  # colour ratios and white balance restored
    old = pc.normalize_to_range(distorted, None, images_per_photo=1)  # the authors': each image to [0, 1]
    assert torch.allclose(old[0], old[1]) and torch.allclose(old[1], old[2])  # three different channels made grey
    assert torch.allclose(pc.normalize_to_range(y, None), (y - 0.1) / 0.5)  # no measurement: [0, 1]


def test_paper_loop_keeps_the_measurement_range():
    n = 20
    cfg = dataclasses.replace(load_config(PRESETS / "paper.yaml").sampler, num_steps=n)
    y = 0.3 + 0.2 * torch.rand(3, 1, 8, 8, generator=gen(1))  # a dim colour photo as three channel images
    result = pc.sample(VESDE(0.01, 50.0, n), zero_score, cfg, y=y, images_per_photo=3, generator=gen(0))
    assert result.x.min().item() == pytest.approx(y.min().item(), abs=1e-5)
    assert result.x.max().item() == pytest.approx(y.max().item(), abs=1e-5)  # not stretched to [0, 1]


@pytest.mark.parametrize("key, value", [("score_ensemble", 2), ("zeta", 0.5), ("renoise", 0.0),
                                        ("sigma_end", 0.01), ("rho", 3.0), ("max_noise_gain", 2.0),
                                        ("hedge_share", 0.9), ("noisy_retry_lambda", 4.0)])
def test_settings_of_the_other_loop_are_refused(key, value):
    cfg = SamplerConfig(consistency="none", num_steps=10, **{key: value})
    with pytest.raises(ValueError, match=f"{key}={value}.*loop tweedie"):
        pc.sample(VESDE(num_scales=10), zero_score, cfg, shape=(1, 1, 4, 4))


def test_blur_aware_consistency_is_refused_in_the_pc_loop():
    cfg = SamplerConfig(consistency="prox", num_steps=10)
    with pytest.raises(ValueError, match="denoised estimate.*loop tweedie"):
        pc.sample(VESDE(num_scales=10), zero_score, cfg, y=torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="sampler.order"):
        pc.sample(VESDE(num_scales=10), zero_score, SamplerConfig(order="pcp", num_steps=10), shape=(1, 1, 4, 4))


def test_paper_preset_resets_the_fast_presets_settings():
    fast = load_config(PRESETS / "fast.yaml")
    paper = load_config(PRESETS / "paper.yaml", base=fast)
    pc.check_settings(paper.sampler)  # nothing of the fast preset is left to be ignored
    assert paper.sampler.loop == "pc" and paper.sampler.consistency == "interpolate"


def test_chains_report_their_effective_snr():
    sde = VESDE(0.01, 20.0, 10)
    corrector = LangevinCorrector(sde, lambda x, sigma: -x, snr=0.1, chains=3)
    x = torch.randn(2, 1, 16, 16, generator=gen(2))
    sigma = torch.full((2,), 1.0)
    corrector.update(x, x, sigma, sigma, gen(3))  # first step: the copies coincide
    assert torch.allclose(corrector.effective_snr, torch.full((2,), 0.1))
    corrector.update(x, x, sigma, sigma, gen(4))  # spread copies: their mean score is shorter
    assert (corrector.effective_snr < 0.1).all()


def test_a_grey_prior_normalises_the_channels_of_a_colour_photo_together(tmp_path):
    from conftest import make_tiny_checkpoint
    from hidd.deblur import Deblurrer
    from hidd.prior import load_prior

    path = make_tiny_checkpoint(tmp_path / "grey.pt", "model.channels=1")
    prior = load_prior(path, preset="paper", overrides=["sampler.num_steps=3"])
    ranges = torch.tensor([[0.6, 0.9], [0.1, 0.2], [0.3, 0.5]])  # a strongly coloured photo
    y = ranges[:, :1, None] + (ranges[:, 1:] - ranges[:, :1])[..., None] * torch.rand(3, 32, 32, generator=gen(4))
    out = Deblurrer(prior)(y[None]).images[0]
    assert out.min().item() == pytest.approx(0.1, abs=2e-3) and out.max().item() == pytest.approx(0.9, abs=2e-3)
    spans = [(out[c].min().item(), out[c].max().item()) for c in range(3)]
    # one map for the photo: the channels are not each stretched onto their own range of y (nor onto [0, 1])
    assert not all(lo == pytest.approx(r[0], abs=0.02) and hi == pytest.approx(r[1], abs=0.02)
                   for (lo, hi), r in zip(spans, ranges.tolist()))
