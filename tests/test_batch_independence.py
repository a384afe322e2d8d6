"""A photo's output does not depend on the photos batched with it; the stages estimate → sample → select are pure
(hidd.deblur, hidd.stages, hidd.randomness, hidd.sampling.calibration)."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from conftest import make_tiny_checkpoint, synthetic_photo
from hidd.camera import Camera, LensPSF, PoissonGaussian, blur, quantize, tone_curve
from hidd.camera.noise import NoiseLevelFunction
from hidd.config import SamplerConfig
from hidd.deblur import Deblurrer
from hidd.operators import UniformBlur, lens_psfs
from hidd.prior import load_prior
from hidd.randomness import PhotoGenerators
from hidd.sampling.calibration import Calibration
from hidd.sampling.loops import sample
from hidd.sampling.schedules import sigma_grid
from hidd.sde import VESDE
from hidd.stages.estimate import Evidence
from hidd.stages.select import Candidate, judge, judge_batch, select
from hidd.tiling import ChunkedScore, ScoreTiler, TilingConfig
from test_blind import photo

SRGB = tone_curve("srgb")


def test_each_photo_draws_what_it_would_alone_and_a_sub_batch_continues_its_stream():
    batch = PhotoGenerators.seeded(5, 3, "cpu", images_per_photo=2)
    drawn = batch.randn((6, 1, 4, 4))
    alone = torch.randn((2, 1, 4, 4), generator=torch.Generator().manual_seed(5))  # one photo: one seeded generator
    assert all(torch.equal(drawn[2 * p:2 * p + 2], alone) for p in range(3))
    later = torch.randn((2, 1, 4, 4), generator=torch.Generator().manual_seed(5).set_state(
        batch.generators[1].get_state()))
    assert torch.equal(batch.select([1]).randn((2, 1, 4, 4)), later)  # photo 1's own stream goes on
    with pytest.raises(ValueError, match="draw 6 images, not 4"):
        batch.randn((4, 1, 4, 4))


def _two_lenses(boundary="free"):
    lenses = [LensPSF(1.5), LensPSF(7.0, softening=0.7)]
    psf, widths = lens_psfs(lenses, torch.float64)
    noise = NoiseLevelFunction.white(tone_curve("none"), torch.full((2,), 0.01, dtype=torch.float64))
    operator = UniformBlur(psf, noise, torch.tensor([1.5, 7.0]), torch.full((2,), 0.01, dtype=torch.float64),
                           boundary=boundary, estimated=lenses, half_widths=widths)
    return operator, lenses


def test_each_image_is_solved_on_its_frame_bordered_by_its_own_psf_half_width():
    operator, lenses = _two_lenses()
    assert operator.half_widths == [lenses[0].kernels(1).shape[-1] // 2, lenses[1].kernels(1).shape[-1] // 2]
    x = torch.from_numpy(synthetic_photo(1, 48)).permute(2, 0, 1)[None].double().expand(2, -1, -1, -1)
    y = blur(x, operator.psf)
    rho = torch.tensor([1e-3, 1e-3])
    batched = operator.prox(x * 0.9, y, rho)
    for i in range(2):
        alone = operator.select([i])
        assert alone.half_widths == [operator.half_widths[i]]
        assert torch.allclose(alone.prox(x[i:i + 1] * 0.9, y[i:i + 1], rho[i:i + 1]), batched[i:i + 1], atol=1e-9)
        assert torch.allclose(alone(x[i:i + 1]), operator(x)[i:i + 1], atol=1e-9)
    single, _ = lens_psfs(lenses[:1], torch.float64)  # the small PSF as a batch of its own: its own border
    own = UniformBlur(single, operator.select([0]).noise, torch.tensor([1.5]), torch.tensor([0.01], dtype=torch.float64))
    assert torch.allclose(own.prox(x[:1] * 0.9, y[:1], rho[:1]), batched[:1], atol=1e-9)
    padded = UniformBlur(operator.psf[:1], own.noise, torch.tensor([1.5]), torch.tensor([0.01], dtype=torch.float64))
    assert (padded.prox(x[:1] * 0.9, y[:1], rho[:1]) - batched[:1]).abs().max() > 1e-4  # bordered by the batch's
    # largest half-width, as before, it would differ


def test_sampling_returns_its_calibration_and_leaves_the_operator_as_it_was():
    operator, _ = _two_lenses(boundary="reflect")
    x = torch.from_numpy(synthetic_photo(2, 48)).permute(2, 0, 1)[None].double()
    noise = torch.randn((2, 3, 48, 48), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = blur(x.expand(2, -1, -1, -1), operator.psf) + 0.01 * noise  # white misfits: λ and the softening drop
    before = {name: (value.clone() if isinstance(value, torch.Tensor) else value)
              for name, value in vars(operator).items()}
    cfg = SamplerConfig(loop="tweedie", schedule="edm", num_steps=6, sigma_start=0.2, sigma_end=0.01,
                        consistency="prox", renoise=0.0, prox_lambda=8.0, noise_calibration=0.05,
                        prox_lambda_white=1.0, softening_white=0.0)

    def oracle(z, sigma):  # a denoiser that returns x itself: the misfit is the white noise
        return (x - z) / sigma[:, None, None, None] ** 2

    result = sample(VESDE(0.01, 50.0, 6), oracle, cfg, y=y, operator=operator,
                    generator=PhotoGenerators.seeded(0, 2, "cpu"))
    for name, value in vars(operator).items():
        same = torch.equal(value, before[name]) if isinstance(value, torch.Tensor) else value == before[name]
        assert same, name
    measured = result.calibration
    assert measured.restart.tolist() == [True, True] and measured.softening.tolist() == [0.0, 0.0]
    assert measured.prox_lambda.tolist() == [1.0, 1.0] and (measured.noise_sigma != operator.noise_sigma).all()


def test_a_photo_whose_misfit_is_white_restarts_alone_and_the_others_keep_their_results():
    x = torch.from_numpy(synthetic_photo(4, 48)).permute(2, 0, 1)[None].double()
    lens = LensPSF(2.5)
    psf, widths = lens_psfs([lens, lens], torch.float64)
    g = torch.Generator().manual_seed(1)
    white = 0.01 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    smooth = 0.03 * F.avg_pool2d(torch.randn(x.shape, generator=g, dtype=torch.float64), 3, 1, 1)
    y = blur(x, psf[:1]) + torch.cat([white, smooth])  # white: restarts; correlated: goes on
    cfg = SamplerConfig(loop="tweedie", schedule="edm", num_steps=6, sigma_start=0.2, sigma_end=0.01,
                        consistency="prox", renoise=0.0, prox_lambda=8.0, noise_calibration=0.05,
                        prox_lambda_white=1.0)
    sde = VESDE(0.01, 50.0, 6)

    def operator(images):
        noise = NoiseLevelFunction.white(tone_curve("none"), torch.full((len(images),), 0.001, dtype=torch.float64))
        return UniformBlur(psf[images], noise, torch.full((len(images),), 2.5), torch.full((len(images),), 0.001),
                           boundary="reflect", half_widths=[widths[i] for i in images])

    def oracle(z, sigma):  # the same clean x for every image: a denoiser that knows no photo's identity
        return (x - z) / sigma[:, None, None, None] ** 2

    batch = sample(sde, oracle, cfg, y=y, operator=operator([0, 1]), generator=PhotoGenerators.seeded(7, 2, "cpu"))
    before = int((sigma_grid(cfg, sde) > 0.05).sum()) + 1  # the levels run before the restart, calibration's included
    assert batch.photo_nfe.tolist() == [6 + before, 6] and batch.nfe == 6 + before
    for i in range(2):
        alone = sample(sde, oracle, cfg, y=y[i:i + 1], operator=operator([i]),
                       generator=PhotoGenerators.seeded(7, 1, "cpu"))
        assert torch.allclose(alone.x, batch.x[i:i + 1], atol=1e-9) and alone.photo_nfe == batch.photo_nfe[i]


def _mixed_photos(size=128):
    """Four photos that take every path of the default: read in focus (not sampled), white misfits (restarted) at
    two radii, a correlated misfit too noisy for the guard (sampled a second time)."""
    g = [torch.Generator().manual_seed(s) for s in range(3)]
    return {
        "sharp": quantize(photo("astronaut", size)),
        "white": Camera(psf=LensPSF(3.0), white_noise=0.02).render(photo("chelsea", size), generator=g[0]),
        "correlated": Camera(psf=LensPSF(5.0), noise=PoissonGaussian(read=0.0005), bits=None).render(
            photo("rocket", size), generator=g[2]),
        "wide": Camera(psf=LensPSF(6.0), white_noise=0.05).render(photo("coffee", size), generator=g[1]),
    }


@pytest.mark.parametrize("channels", [3, 1])
def test_a_photo_deblurred_alone_and_inside_a_batch_of_mixed_photos_comes_out_the_same(tmp_path, channels,
                                                                                       monkeypatch):
    import hidd.sampling.calibration

    measured = []  # each photo's calibration misfit, to check that the batch takes every path
    calibrate = hidd.sampling.calibration.calibrate

    def recording(*args, **kwargs):
        out = calibrate(*args, **kwargs)
        measured.append(out)
        return out

    monkeypatch.setattr(hidd.sampling.blur_consistency, "calibrate", recording)
    checkpoint = make_tiny_checkpoint(tmp_path / "tiny.pt", *([] if channels == 3 else ["model.channels=1"]))
    deblur = Deblurrer(load_prior(checkpoint, preset="fast"))  # the shipped default on a tiny untrained model
    photos = _mixed_photos()
    if channels == 1:  # a 1-channel prior sees each colour channel as an image: two photos suffice
        photos = {name: photos[name] for name in ("white", "correlated")}
    alone = {name: deblur(y, seed=3) for name, y in photos.items()}
    restarted = {name: bool(measured[k].restart.any()) for k, name in
                 enumerate(name for name in photos if not bool(alone[name].in_focus[0]))}
    batch = deblur(torch.cat(list(photos.values())), seed=3)
    for i, name in enumerate(photos):
        one = alone[name]
        assert torch.allclose(batch.images[i], one.images[0], atol=1e-4), name
        assert batch.photo_nfe[i] == one.photo_nfe[0] and batch.reasons[i] == one.reasons[0], name
        assert batch.share[i] == pytest.approx(one.share[0].item(), abs=1e-4), name
        assert batch.noise_sigma[i] == pytest.approx(one.noise_sigma[0].item(), rel=1e-4), name
    # the batch took every path: a white misfit restarted (12 + 8 NFE), a correlated one did not and was sampled a
    # second time (12 + 8), and, in colour, a photo read in focus (0) and two PSFs of other sizes
    assert restarted["white"] and not restarted["correlated"]
    nfe = dict(zip(photos, batch.photo_nfe.tolist()))
    assert nfe["white"] == 20 and nfe["correlated"] == 20
    if channels == 3:
        assert nfe["sharp"] == 0 and restarted["wide"] and batch.radius[3] > batch.radius[1] + 2
        assert batch.reasons[0] == "in-focus" and torch.equal(batch.images[0], photos["sharp"][0])


def test_the_network_is_tiled_by_one_images_memory_and_runs_a_batch_in_chunks_it_holds():
    tiler = ScoreTiler(TilingConfig(), multiple=4, bytes_per_pixel=1000.0, budget_bytes=2 * 64 * 64 * 1000)
    assert tiler.plan((8, 3, 64, 64)) is None  # one image fits: whole, whatever the batch
    calls = []

    def score(x, sigma):
        calls.append(len(x))
        return x * sigma[:, None, None, None]

    wrapped = tiler.wrap(score, (5, 3, 64, 64))
    x, sigma = torch.rand(5, 3, 64, 64), torch.arange(1.0, 6.0)
    assert isinstance(wrapped, ChunkedScore) and torch.equal(wrapped(x, sigma), score(x, sigma))
    assert calls[:3] == [2, 2, 1]
    assert tiler.plan((1, 3, 128, 128)) is not None  # one image too large: tiled, alone or in a batch


def _select_case(amplification: float):
    """A photo (C, H, W) with noise σ 0.01 and its result: the clean photo plus its noise amplified."""
    clean = torch.from_numpy(synthetic_photo(3, 160)).permute(2, 0, 1).double()
    noise = 0.01 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0), dtype=clean.dtype)
    return clean + noise, clean + amplification * noise


def _evidence(**fields):
    defaults = dict(tone=SRGB, blind=True, max_share=torch.tensor([1.0], dtype=torch.float64),
                    in_focus=torch.tensor([False]))
    return Evidence(**{**defaults, **fields})


def test_select_returns_the_photo_itself_where_every_cap_is_0_and_names_the_check():
    cfg = SamplerConfig(max_noise_gain=2.0, hedge_share=0.9, ringing_share=0.5)  # the fast preset's guard
    y, noisy = _select_case(amplification=12.0)  # even a ¼ blend triples the noise
    white = torch.tensor([0.1], dtype=torch.float64)  # a white misfit: no hedge
    chosen = select(y, [Candidate(noisy, None, white)], _evidence(), cfg)
    assert chosen.share == 0 and chosen.reason == "noise" and torch.equal(chosen.output, y)
    focused = select(y, [Candidate(noisy, None, white)], _evidence(in_focus=torch.tensor([True])), cfg)
    assert focused.share == 0 and focused.reason == "in-focus" and torch.equal(focused.output, y)
    y, clean = _select_case(amplification=0.0)
    assert select(y, [Candidate(clean, None, white)], _evidence(), cfg).reason == "full"
    correlated = torch.tensor([0.9], dtype=torch.float64)
    hedged = select(y, [Candidate(clean, None, correlated)], _evidence(), cfg)
    assert hedged.reason == "hedge" and hedged.share == pytest.approx(0.9)
    trusted = select(y, [Candidate(clean, None, correlated)], _evidence(max_share=torch.tensor([0.5])), cfg)
    assert trusted.reason == "trust+hedge" and trusted.share == pytest.approx(0.45)
    given = select(y, [Candidate(clean, None, correlated)], _evidence(blind=False), cfg)  # a given blur: no hedge
    assert given.reason == "full" and given.share == 1.0
    y, noisy = _select_case(amplification=2.2)  # blends ¼, ½, ¾: 1.3×, 1.6×, 1.9× the noise: ¼ kept
    first = Candidate(noisy, None, white)
    chosen = select(y, [first, Candidate(clean, None, white)], _evidence(), cfg)  # a second, cleaner: kept
    assert (chosen.candidate, chosen.share, chosen.reason) == (1, 1.0, "full")
    broken = Candidate(torch.full_like(y, float("nan")), None, white)  # a second that is not finite: not taken
    chosen = select(y, [first, broken], _evidence(), cfg)
    assert (chosen.candidate, chosen.share, chosen.reason) == (0, 0.25, "noise")


def test_a_batch_is_judged_as_each_photo_alone():
    cfg = SamplerConfig(max_noise_gain=2.0, hedge_share=0.9, ringing_share=0.5)
    cases = [_select_case(a) for a in (12.0, 2.2, 0.0)]  # nothing kept, a ¼ blend, the whole result
    misfits = [torch.tensor([v], dtype=torch.float64) for v in (0.1, 0.9, 0.1)]  # the second is hedged
    candidates = [Candidate(result, (LensPSF(4.0),), misfit) for (_, result), misfit in zip(cases, misfits)]
    photos = torch.stack([y for y, _ in cases])
    evidence = _evidence(max_share=torch.ones(3, dtype=torch.float64), in_focus=torch.zeros(3, dtype=torch.bool))
    together = judge_batch(photos, candidates, evidence, cfg)
    assert [float(m.share[0]) for m in together] == pytest.approx([0.0, 0.25 * 0.9, 1.0])
    for i, measured in enumerate(together):
        alone = judge(photos[i], candidates[i], evidence.select([i]), cfg)
        for field in dataclasses.fields(measured):
            assert torch.allclose(getattr(measured, field.name), getattr(alone, field.name), rtol=0, atol=1e-12,
                                  equal_nan=True), field.name
        chosen = select(photos[i], [candidates[i]], evidence.select([i]), cfg, [measured])
        assert chosen.share == float(measured.share[0]) and torch.equal(chosen.output, measured.images[0])


def test_calibration_rows_are_taken_and_put_back_per_image():
    operator, _ = _two_lenses()
    blind = Calibration.blind(operator, 10.0)
    assert blind.prox_lambda.tolist() == [10.0, 10.0] and blind.misfit_correlation.isnan().all()
    part = dataclasses.replace(blind.select([1]), prox_lambda=torch.tensor([1.0]),
                               restart=torch.tensor([True]))
    merged = blind.scatter([1], part)
    assert merged.prox_lambda.tolist() == [10.0, 1.0] and merged.restart.tolist() == [False, True]
    assert blind.prox_lambda.tolist() == [10.0, 10.0]  # the original as it was
