"""Blur-aware data consistency, the tweedie loop, its σ grids and warm starts."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from hidd.config import SamplerConfig, load_config
from hidd.camera import aperture_psf, blur, otf, tone_curve
from hidd.camera.noise import NoiseLevelFunction
from hidd.camera.psf import LensPSF, centre_pad, stack_psfs
from hidd.measurement import measurement_model
from hidd.operators import DepthVaryingBlur, UniformBlur, reflect_periodic
from hidd.misfit import lag1_correlation
from hidd.sampling.blur_consistency import GradientConsistency, ProxConsistency, build_consistency
from hidd.sampling.ensemble import FlipEnsembleScore
from hidd.sampling.loops import sample
from hidd.sampling.schedules import sigma_grid
from hidd.sde import VESDE
from test_sampling import PRESETS, gaussian_score


def smooth_image(h=48, w=40, seed=0):
    """A band-limited colour image (B=1, float64) with non-periodic borders."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 4, w // 4, generator=g, dtype=torch.float64)
    ramp = torch.linspace(0, 0.5, w, dtype=torch.float64)  # left and right borders differ
    return F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False) * 0.5 + ramp


def white(sigma, tone="none", images=1):
    """White noise of std sigma (per image) under a tone curve ('none': blur acts on the values as given)."""
    return NoiseLevelFunction.white(tone_curve(tone), torch.full((images,), sigma, dtype=torch.float64))


def uniform(radius=2.5, noise=0.01, boundary="reflect", tone="none"):
    psf = aperture_psf(radius, dtype=torch.float64)[None]
    return UniformBlur(psf, white(noise, tone), torch.tensor([radius]), torch.tensor([noise]), boundary=boundary)


def test_prox_with_tiny_rho_recovers_x_where_the_otf_is_not_small():
    x = smooth_image()
    op = uniform()
    y = blur(x, op.psf)  # noiseless, reflect boundaries
    solved = op.prox(torch.zeros_like(x), y, torch.tensor([1e-9]))
    spectrum_true, spectrum_solved = (torch.fft.rfft2(reflect_periodic(v)) for v in (x, solved))
    strong = otf(op.psf[0, 0], reflect_periodic(x).shape[-2:]).abs() > 0.1
    assert strong.float().mean() > 0.2
    error = (spectrum_solved - spectrum_true)[..., strong].abs().max() / spectrum_true.abs().max()
    assert error < 1e-3  # (the clamp to u ≥ 0 in linear light touches a few near-zero pixels)
    # band-limited x: recovered in pixels too, borders included (no wrap-around ringing) ...
    assert (solved - x).abs().max() < 0.04
    # ... where the plain periodic FFT solve rings at the borders
    k = otf(op.psf[0, 0], x.shape[-2:])
    naive = torch.fft.irfft2(k.conj() * torch.fft.rfft2(y) / (k.abs() ** 2 + 1e-9), s=x.shape[-2:])
    assert (naive - x)[..., :, :3].abs().max() > 10 * (solved - x)[..., :, :3].abs().max()


@pytest.mark.parametrize("tone", ["srgb", "gamma"])
def test_linear_light_prox_is_exact_on_known_model_noise_free_data(tone):
    """y = Γ(k ∗ Γ⁻¹(x)): the step inverts the tone curve, deconvolves, and maps back; x is recovered
    wherever the OTF is not small (band-limited x: in pixels too)."""
    curve = tone_curve(tone)
    x = smooth_image(64, 64).clamp(0.02, 1)
    op = uniform(3.0, tone=tone)
    y = curve.encode(blur(curve.decode(x), op.psf))
    assert torch.allclose(op(x), y)
    solved = op.prox(torch.full_like(x, 0.5), y, torch.tensor([1e-10]))
    error = (solved - x).abs().max()
    assert error < 5e-3  # (Γ⁻¹ is steep near black: rounding there is magnified)
    in_values = uniform(3.0).prox(torch.full_like(x, 0.5), y, torch.tensor([1e-10]))
    assert (in_values - x).abs().max() > 10 * error  # the same data solved in encoded values is wrong


def test_noise_calibration_measures_the_misfit_once():
    x = smooth_image()
    op = uniform(noise=0.001)
    y = blur(x, op.psf) + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    step = ProxConsistency(op, prox_lambda=1.0, noise_calibration=0.05)
    step.apply(x, x, y, torch.tensor([0.1]))  # above the calibration level: the estimate stands
    assert step.calibration.noise_sigma.item() == pytest.approx(0.001)
    step.apply(x, x, y, torch.tensor([0.04]))
    assert step.calibration.noise_sigma.item() == pytest.approx(0.02, rel=0.05)  # the true x's misfit is the noise
    step.apply(x, x, y + 1, torch.tensor([0.02]))
    assert step.calibration.noise_sigma.item() == pytest.approx(0.02, rel=0.05)  # once only
    assert op.noise_sigma.item() == pytest.approx(0.001)  # measured, not written into the operator
    with pytest.raises(ValueError, match="noise_calibration"):
        ProxConsistency(op, prox_lambda=1.0, noise_calibration=-1)


def test_lambda_follows_the_misfits_correlation_and_the_loop_restarts_once():
    g = torch.Generator().manual_seed(0)
    white = torch.randn(2, 3, 64, 64, generator=g, dtype=torch.float64)
    smooth = F.avg_pool2d(white, 3, 1, 1)  # neighbours share noise, as after demosaicing or JPEG
    assert lag1_correlation(white).abs().max() < 0.05 and lag1_correlation(smooth).min() > 0.6
    x = smooth_image(64, 64)
    for noise, expected in ((0.01 * white[:1], 1.0), (0.03 * smooth[:1], 8.0)):
        op = uniform(noise=0.001)
        step = ProxConsistency(op, prox_lambda=8.0, noise_calibration=0.05, prox_lambda_white=1.0)
        step.apply(x, x, blur(x, op.psf) + noise, torch.tensor([0.04]))
        calibration = step.calibration
        assert calibration.prox_lambda.item() == pytest.approx(expected)
        assert calibration.restart.item() == (expected == 1)  # λ changed: sampled again from the start
        # recorded for the guard's hedge: the misfit of the true x is the noise
        assert calibration.misfit_correlation.item() == pytest.approx(lag1_correlation(noise).item(), abs=1e-9)
    cfg = SamplerConfig(loop="tweedie", schedule="edm", num_steps=6, sigma_start=0.2, sigma_end=0.01,
                        consistency="prox", renoise=0.0, prox_lambda=8.0, noise_calibration=0.05,
                        prox_lambda_white=1.0)
    op = uniform(noise=0.001)
    y = blur(x, op.psf) + 0.01 * white[:1]
    levels = sigma_grid(cfg, VESDE(0.01, 50.0, 6))
    before = int((levels > 0.05).sum()) + 1  # the levels run before the restart, the calibrating one included

    def oracle_score(z, sigma):  # a denoiser that returns x itself: the misfit is the white noise
        return (x - z) / sigma[:, None, None, None] ** 2

    result = sample(VESDE(0.01, 50.0, 6), oracle_score, cfg, y=y, operator=op, generator=torch.Generator())
    assert result.nfe == 6 + before and result.calibration.noise_sigma.item() == pytest.approx(0.01, rel=0.1)
    assert op.noise_sigma.item() == pytest.approx(0.001)  # the operator as it was
    correlated = uniform(noise=0.001)
    result = sample(VESDE(0.01, 50.0, 6), oracle_score, cfg, y=blur(x, op.psf) + 0.03 * smooth[:1],
                    operator=correlated, generator=torch.Generator())
    assert result.nfe == 6  # λ stays: no restart


def test_a_white_misfit_drops_the_blind_softening_and_keeps_a_given_psf():
    g = torch.Generator().manual_seed(1)
    x = smooth_image(64, 64)
    lenses = [LensPSF(2.5, softening=0.7), LensPSF(2.5, softening=0.7)]
    psf = stack_psfs([lens.kernels(1, torch.float64) for lens in lenses])
    noise = torch.randn(2, 3, 64, 64, generator=g, dtype=torch.float64)
    smooth = F.avg_pool2d(noise, 3, 1, 1)
    y = blur(x.expand(2, -1, -1, -1), psf) + torch.cat([0.01 * noise[:1], 0.03 * smooth[1:]])  # white, correlated
    op = UniformBlur(psf.clone(), white(0.001, images=2), torch.tensor([2.5, 2.5]), torch.tensor([0.001, 0.001]),
                     boundary="reflect", estimated=list(lenses))
    step = ProxConsistency(op, prox_lambda=8.0, noise_calibration=0.05, prox_lambda_white=1.0, softening_white=0.0)
    step.apply(x, x.expand(2, -1, -1, -1), y, torch.tensor([0.04, 0.04]))
    used = step.operator  # the blur the step uses from now on: a new operator; the one given is unchanged
    assert used.estimated == [LensPSF(2.5), lenses[1]] and op.estimated == lenses and torch.equal(op.psf, psf)
    assert torch.allclose(used.psf[0], centre_pad(LensPSF(2.5).kernels(1, torch.float64), used.psf.shape[-1]))
    assert torch.equal(used.psf[1], psf[1]) and step.calibration.restart.tolist() == [True, False]
    assert step.calibration.softening.tolist() == [0.0, 1.0]
    given = UniformBlur(psf.clone(), white(0.001, images=2), torch.tensor([2.5, 2.5]), torch.tensor([0.001, 0.001]))
    assert given.with_softening(torch.zeros(2)) is given  # a given PSF is the user's
    modelled = UniformBlur(psf.clone(), white(0.001, images=2), torch.tensor([2.5, 2.5]), torch.tensor([0.001, 0.001]),
                           estimated=list(lenses), fitted=[True, False])  # the second: hidd.blind.defocus's spread
    softened = modelled.with_softening(torch.zeros(2))
    assert softened.estimated == [LensPSF(2.5), lenses[1]] and modelled.estimated == lenses
    assert torch.equal(softened.psf[1], psf[1]) and softened.half_widths[0] < softened.half_widths[1]  # each its own
    with pytest.raises(ValueError, match="softening_white"):
        ProxConsistency(op, prox_lambda=1.0, softening_white=-1.0)


def test_prox_with_huge_rho_keeps_the_estimate_and_is_per_image():
    x = smooth_image().expand(2, -1, -1, -1)
    psf = aperture_psf(3.0, dtype=torch.float64).expand(2, -1, -1)
    estimate = torch.rand_like(x)
    for boundary in ("reflect", "free"):
        op = UniformBlur(psf, white(0.01, images=2), torch.tensor([3.0, 3.0]), torch.tensor([0.01, 0.01]),
                         boundary=boundary)
        out = op.prox(estimate, blur(x, psf), torch.tensor([1e9, 1e-9]))
        assert torch.allclose(out[0], estimate[0], atol=1e-6)
        assert not torch.allclose(out[1], estimate[1], atol=1e-2)


def test_free_boundary_prox_fits_a_crop_of_a_larger_scene_better_at_its_borders():
    scene = smooth_image(80, 72, seed=3)
    x = scene[..., 12:-12, 12:-12]
    y = blur(scene, aperture_psf(4.0, dtype=torch.float64))[..., 12:-12, 12:-12]  # the blur saw beyond the frame
    estimate = x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    errors = {}
    for boundary in ("reflect", "free"):
        solved = uniform(4.0, boundary=boundary).prox(estimate, y, torch.tensor([1e-2]))
        errors[boundary] = (solved - x).abs()[..., :, :8].mean().item()  # the left border
    assert errors["free"] < 0.8 * errors["reflect"]


def test_rho_follows_diffpir_and_prox_moves_x_with_its_mean():
    op = uniform(noise=0.02)
    step = ProxConsistency(op, prox_lambda=2.0)
    assert step.rho(torch.tensor([0.1])).item() == pytest.approx(2.0 * 0.02**2 / 0.1**2)
    x_mean = smooth_image()
    noise = 0.1 * torch.randn_like(x_mean)
    x, new_mean = step.apply(x_mean + noise, x_mean, blur(smooth_image(seed=1), op.psf), torch.tensor([0.1]))
    assert torch.allclose(x - new_mean, noise)


def test_gradient_step_converges_to_the_prox():
    x = smooth_image()
    op = uniform()
    y = blur(x, op.psf) + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    estimate = smooth_image(seed=2)
    rho = torch.tensor([0.05])
    exact = op.prox(estimate, y, rho)
    descent = GradientConsistency(op, prox_lambda=1.0, steps=150, step=1.0).solve(estimate, y, rho)
    # The prox solves on the reflect-periodic extension, where border pixels weigh half as much as
    # inner ones; the descent minimises the exact objective. They agree away from the borders.
    assert (descent - exact)[..., 12:-12, 12:-12].abs().max() < 2e-3


def test_gradient_step_fits_a_depth_varying_blur():
    x = smooth_image()
    radius_map = torch.linspace(0.0, 4.0, 40, dtype=torch.float64).expand(1, 1, 48, 40)
    op = DepthVaryingBlur(radius_map, white(0.01), torch.tensor([0.01]), levels=5)
    y = op(x)
    start = torch.full_like(x, 0.5)
    fitted = GradientConsistency(op, prox_lambda=1.0, steps=50, step=1.0).solve(start, y, torch.tensor([1e-6]))
    assert (op(fitted) - y).norm() < 0.05 * (op(start) - y).norm()
    assert op.radius.item() == pytest.approx(2.0)
    # the layered proximal step: exact per layer, so it fits too (where layers blend, approximately)
    layered = op.prox(start, y, torch.tensor([1e-4]))
    assert (op(layered) - y).norm() < 0.5 * (op(start) - y).norm()


def test_blur_aware_steps_need_an_operator():
    with pytest.raises(ValueError, match="operator"):
        build_consistency(SamplerConfig(consistency="gradient"), 0.1)
    assert isinstance(build_consistency(SamplerConfig(consistency="prox"), 0.1, uniform()), ProxConsistency)


@pytest.mark.parametrize("schedule,renoise,zeta", [("geometric", 1.0, 1.0), ("edm", 1.0, 0.0), ("edm", 0.0, 1.0)],
                         ids=["ancestral", "deterministic", "no-renoise"])
def test_warm_start_sigma_bookkeeping(schedule, renoise, zeta):
    n, start, end = 6, 0.2, 0.01
    cfg = SamplerConfig(loop="tweedie", schedule=schedule, num_steps=n, sigma_start=start, sigma_end=end,
                        consistency="none", renoise=renoise, zeta=zeta)
    y = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    seen = []

    def recording_score(x, sigma):
        seen.append((x.clone(), sigma.clone()))
        return gaussian_score(x, sigma)

    result = sample(VESDE(0.01, 50.0, n), recording_score, cfg, y=y, generator=torch.Generator().manual_seed(1))
    sigmas = [s.item() for _, s in seen]
    assert result.nfe == n == len(sigmas)
    assert sigmas[0] == pytest.approx(start) and sigmas[-1] == pytest.approx(end)
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))
    assert torch.allclose(torch.tensor(sigmas, dtype=torch.float64), sigma_grid(cfg, VESDE(0.01, 50.0, n)))
    first = seen[0][0] - y  # the first iterate is y + σ_start z
    assert first.mean().abs() < 0.01 and first.std().item() == pytest.approx(start, rel=0.03)
    # the next iterate: the estimate plus renoise · σ_1 times fresh noise (ζ = 1) or the predicted noise (ζ = 0)
    x, sigma = seen[0][0], seen[0][1]
    estimate = x + sigma[:, None, None, None] ** 2 * gaussian_score(x, sigma)
    if zeta == 0:
        assert torch.allclose(seen[1][0], estimate + sigmas[1] / sigmas[0] * (x - estimate), atol=1e-6)
    else:
        assert (seen[1][0] - estimate).std().item() == pytest.approx(renoise * sigmas[1], rel=0.05, abs=1e-6)
    assert torch.allclose(result.x, (seen[-1][0] + end**2 * gaussian_score(seen[-1][0], seen[-1][1])).clamp(0, 1))


def test_sigma_grids():
    sde = VESDE(0.01, 50.0, 10)
    edm = sigma_grid(SamplerConfig(schedule="edm", num_steps=5, sigma_start=1.0, sigma_end=0.01, rho=7.0), sde)
    i = torch.arange(5, dtype=torch.float64) / 4
    assert torch.allclose(edm, (1.0 + i * (0.01 ** (1 / 7) - 1.0)) ** 7)
    geometric = sigma_grid(SamplerConfig(schedule="geometric", num_steps=3), sde)  # no warm start: σ_max → σ_min
    assert torch.allclose(geometric, torch.tensor([50.0, math.sqrt(0.5), 0.01], dtype=torch.float64))
    linear_t = sigma_grid(SamplerConfig(num_steps=4, t_end=1e-5), sde)
    assert torch.allclose(linear_t, sde.sigma(torch.linspace(1.0, 1e-5, 4, dtype=torch.float64)))
    with pytest.raises(ValueError, match="linear_t"):
        sigma_grid(SamplerConfig(schedule="linear_t", sigma_start=0.5), sde)
    with pytest.raises(ValueError, match="tweedie"):  # the paper loop walks its own grid
        sample(sde, gaussian_score, SamplerConfig(schedule="edm", consistency="none"), shape=(1, 1, 4, 4))


def test_flip_ensemble_costs_one_nfe_per_flip_and_keeps_equivariant_scores():
    calls = []

    def score(x, sigma):
        calls.append(1)
        return -x

    ensemble = FlipEnsembleScore(score, 4)
    x = torch.rand(1, 1, 5, 7)
    assert torch.allclose(ensemble(x, torch.ones(1)), -x) and len(calls) == 4
    cfg = SamplerConfig(loop="tweedie", schedule="geometric", num_steps=3, sigma_start=0.2, consistency="none",
                        score_ensemble=2)
    assert sample(VESDE(0.01, 20.0, 3), gaussian_score, cfg, y=x, generator=torch.Generator()).nfe == 6


def test_fast_and_quality_presets_are_blind_blur_aware_and_short():
    for name, max_nfe in (("fast", 20), ("quality", 100)):
        cfg = load_config(PRESETS / f"{name}.yaml").sampler
        assert (cfg.loop, cfg.consistency, cfg.radius, cfg.psf) == ("tweedie", "prox", 0.0, "disk")
        assert cfg.num_steps * cfg.score_ensemble <= max_nfe and 0 < cfg.sigma_start < 1


def test_depth_preset_is_fast_with_a_blind_radius_map():
    depth = load_config(PRESETS / "depth.yaml").sampler
    fast = load_config(PRESETS / "fast.yaml").sampler
    assert (depth.radius_map, depth.radius, depth.consistency) == (True, 0.0, "prox")  # the layered exact step
    assert dataclasses.replace(depth, radius_map=False) == fast


def test_fast_preset_models_the_camera_and_guards_against_harm():
    fast = load_config(PRESETS / "fast.yaml").sampler
    assert (fast.tone_curve, fast.noise_sigma, fast.noise_sigma_min) == ("srgb", 0.0, 0.0)
    assert fast.noise_calibration > 0 and fast.max_noise_gain > 1
    noisy = blur(smooth_image(64, 64).float(), aperture_psf(3.0)[None])
    noisy = noisy + 0.05 * torch.randn(noisy.shape, generator=torch.Generator().manual_seed(0))
    cfg = dataclasses.replace(fast, radius=3.0, tone_curve="none")
    assert measurement_model(noisy, cfg).noise_sigma.item() == pytest.approx(0.05, rel=0.15)
    floored = dataclasses.replace(cfg, noise_sigma_min=0.2)
    assert measurement_model(noisy, floored).noise_sigma.item() == pytest.approx(0.2)


def test_a_known_radius_map_replaces_the_estimate(tiny_checkpoint):
    from hidd.deblur import Deblurrer
    from hidd.prior import load_prior

    y = blur(smooth_image(40, 40).float(), aperture_psf(2.0)[None]).clamp(0, 1)
    known = torch.full((1, 40, 40), 2.0)
    cfg = dataclasses.replace(load_config(PRESETS / "fast.yaml").sampler, radius_map=True, consistency="gradient")
    op = measurement_model(y, cfg, known)
    assert isinstance(op, DepthVaryingBlur) and torch.equal(op.radius_map[:, 0], known)
    with pytest.raises(ValueError, match="radius map of shape"):
        measurement_model(y, cfg, known[..., :30])
    with pytest.raises(ValueError, match="needs sampler.radius_map"):
        measurement_model(y, dataclasses.replace(cfg, radius_map=False), known)
    grad = ["sampler.radius_map=true", "sampler.consistency=gradient", "sampler.num_steps=2"]
    prior = load_prior(tiny_checkpoint, preset="fast", overrides=grad)
    out = Deblurrer(prior)(y, radius_map=torch.full((1, 40, 40), 3.25))  # 40 px: padded to the model's multiple
    assert out.images.shape == y.shape and out.radius.item() == pytest.approx(3.25)
    with pytest.raises(ValueError, match="blur-aware consistency"):
        Deblurrer(load_prior(tiny_checkpoint, preset="paper"))(y, radius_map=known)


@pytest.mark.parametrize("boundary", ["free", "reflect"])
def test_the_tweedie_loop_reads_nothing_from_the_device_per_level(boundary, monkeypatch):
    """Host reads (.item, .tolist, .cpu) happen where the step calibrates, not at every level: a grid twice as long
    reads as often."""
    x = smooth_image(32, 32)
    op = uniform(noise=0.001, boundary=boundary)
    y = blur(x, op.psf) + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)

    def oracle_score(z, sigma):
        return (x - z) / sigma[:, None, None, None] ** 2

    reads = []
    for name in ("item", "tolist", "cpu"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _real=real, _name=name, **k:
                            reads.append(_name) or _real(self, *a, **k))
    counts = []
    for steps in (6, 12):
        cfg = SamplerConfig(loop="tweedie", schedule="edm", num_steps=steps, sigma_start=0.2, sigma_end=0.01,
                            consistency="prox", renoise=0.0, prox_lambda=8.0, noise_calibration=0.05,
                            prox_lambda_white=1.0)
        reads.clear()
        result = sample(VESDE(0.01, 50.0, steps), oracle_score, cfg, y=y, operator=op, generator=torch.Generator())
        assert bool(result.calibration.restart)  # the misfit is white: λ changed, a restart (read once)
        counts.append(len(reads))
    assert counts[0] == counts[1]
