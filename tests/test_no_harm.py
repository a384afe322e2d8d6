"""The no-harm guard (hidd.no_harm): a result that amplified noise is backed off towards its input, a photo read as
in focus is returned unchanged."""
import pytest
import torch

from conftest import gray_crop, lens_filter, synthetic_photo, wiener
from hidd.camera import tone_curve
from hidd.camera.psf import LensPSF
from hidd.no_harm import BLEND_NOISE_GAIN, MAX_NOTCH_EXCESS, back_off, hedge, noise_gain
from hidd.ringing import notch_excess

SRGB = tone_curve("srgb")


def _photos(amplification: float):
    """(clean, y, results): a clean photo, its noisy input (σ 0.01) twice, and two results: the clean photo and the
    input with its noise amplified `amplification` ×."""
    clean = torch.from_numpy(synthetic_photo(3, 160)).permute(2, 0, 1)[None].double()
    noise = 0.01 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0), dtype=clean.dtype)
    y = clean + noise  # unclipped: a blend's noise is then close to (1 − w + w · amplification) × the input's
    return clean, torch.cat([y, y]), torch.cat([clean, clean + amplification * noise])


def _blend_gains(inputs, results, shares=(0.25, 0.5, 0.75)):
    return [noise_gain(inputs[1:], inputs[1:] + w * (results[1:] - inputs[1:]), SRGB).item() for w in shares]


def test_a_cleaner_result_is_kept_and_a_noisier_one_backed_off_to_the_largest_clean_enough_blend():
    clean, inputs, results = _photos(amplification=2.2)
    assert _blend_gains(inputs, results) == pytest.approx([1.3, 1.6, 1.9], abs=0.05)
    gain = noise_gain(inputs, results, SRGB)
    assert gain[0] < 1 and gain[1] == pytest.approx(2.2, abs=0.05)
    guarded = back_off(inputs, results, SRGB, limit=2.0)  # a blend must stay within BLEND_NOISE_GAIN (1.5): ¼ only
    assert guarded.share.tolist() == [1.0, 0.25] and torch.equal(guarded.noise_gain, gain)
    assert torch.equal(guarded.images[0], clean[0])
    assert torch.allclose(guarded.images[1], inputs[1] + 0.25 * (results[1] - inputs[1]))
    assert noise_gain(inputs[1:], guarded.images[1:], SRGB).item() <= BLEND_NOISE_GAIN
    assert back_off(inputs, results, SRGB, limit=2.5).share.tolist() == [1.0, 1.0]  # within the limit: all of it


def test_of_several_clean_enough_blends_the_largest_is_taken_and_a_lower_limit_is_the_bar():
    _, inputs, results = _photos(amplification=1.8)
    assert _blend_gains(inputs, results) == pytest.approx([1.2, 1.4, 1.6], abs=0.05)
    assert back_off(inputs, results, SRGB, limit=1.7).share.tolist() == [1.0, 0.5]  # ¼ and ½ pass the bar 1.5
    assert back_off(inputs, results, SRGB, limit=1.3).share.tolist() == [1.0, 0.25]  # the limit below 1.5 is the bar


def test_a_result_too_noisy_at_every_share_and_a_photo_in_focus_come_back_unchanged():
    _, inputs, results = _photos(amplification=12.0)  # even w = ¼ triples the noise
    guarded = back_off(inputs, results, SRGB, limit=2.0)
    assert guarded.share.tolist() == [1.0, 0.0] and torch.equal(guarded.images[1], inputs[1])
    _, inputs, results = _photos(amplification=2.2)  # blendable, but read in focus: not even blended
    guarded = back_off(inputs, results, SRGB, limit=2.0, in_focus=torch.tensor([False, True]))
    assert guarded.share.tolist() == [1.0, 0.0] and torch.equal(guarded.images[1], inputs[1])
    assert guarded.noise_gain[0] < 1 and guarded.noise_gain[1].isnan()  # in focus: its result is not even measured


def test_a_single_precision_result_of_a_double_precision_photo_and_an_unmeasurable_gain():
    clean, inputs, results = _photos(amplification=2.2)
    guarded = back_off(inputs, results.float(), SRGB, limit=2.0)
    assert guarded.images.dtype == torch.float32 and guarded.share.tolist() == [1.0, 0.25]
    results[1] = float("nan")  # a gain that cannot be measured counts as too noisy: the photo comes back
    guarded = back_off(inputs, results, SRGB, limit=2.0)
    assert guarded.share.tolist() == [1.0, 0.0] and torch.equal(guarded.images[1], inputs[1])


def test_a_half_trusted_blur_keeps_at_most_its_share_and_its_blends_are_capped_too():
    _, inputs, results = _photos(amplification=2.2)  # blends ¼, ½, ¾: 1.3×, 1.6×, 1.9× the noise
    guarded = back_off(inputs, results, SRGB, limit=2.0, max_share=torch.tensor([0.5, 0.5]))
    assert guarded.share.tolist() == [0.5, 0.25]  # clean: its cap; too noisy: the largest clean blend below the cap
    assert torch.allclose(guarded.images[0], inputs[0] + 0.5 * (results[0] - inputs[0]))
    _, inputs, results = _photos(amplification=1.8)  # too noisy for the limit 1.7; a blend at 0.4: about 1.3×
    cap = torch.tensor([1.0, 0.4], dtype=torch.float64)
    assert back_off(inputs, results, SRGB, limit=1.7, max_share=cap).share.tolist() == [1.0, 0.4]  # the cap itself


def test_a_result_whose_model_leaves_a_correlated_misfit_is_hedged_and_the_hedge_scales_every_share():
    correlation = torch.tensor([0.1, 0.35, 0.45, 0.55, 0.9, float("nan")], dtype=torch.float64)
    assert hedge(correlation, 0.9).tolist() == pytest.approx([1.0, 1.0, 0.95, 0.9, 0.9, 0.9])  # NaN: unmeasured
    assert hedge(correlation, 1.0).tolist() == [1.0] * 6  # off
    _, inputs, results = _photos(amplification=2.2)  # the first result clean, the second backed off to its ¼ blend
    guarded = back_off(inputs, results, SRGB, limit=2.0, hedges=torch.tensor([0.9, 0.9], dtype=torch.float64))
    assert guarded.share.tolist() == pytest.approx([0.9, 0.225])  # decided on the full result, then hedged
    assert guarded.hedge.tolist() == [0.9, 0.9]
    assert torch.allclose(guarded.images[0], inputs[0] + 0.9 * (results[0] - inputs[0]))
    assert torch.allclose(guarded.images[1], inputs[1] + 0.225 * (results[1] - inputs[1]))
    assert back_off(inputs, results, SRGB, limit=2.0).share.tolist() == [1.0, 0.25]  # no hedge given: none


def test_a_result_that_rings_at_its_blurs_notch_keeps_at_most_the_ringing_share():
    sharp = gray_crop("camera")
    photo = lens_filter(sharp, LensPSF(0.0, softening=2.0))  # a soft blur, which a disk's deconvolution rings on
    inputs = torch.stack([photo, photo])[:, None].expand(-1, 3, -1, -1)
    results = torch.stack([sharp, wiener(photo, LensPSF(4.0))])[:, None].expand(-1, 3, -1, -1)
    lenses = [(LensPSF(4.0),), (LensPSF(4.0),)]  # one lens for all channels of each
    guarded = back_off(inputs, results, SRGB, limit=1e6, lenses=lenses, ringing_share=0.5)  # noise: no limit
    assert guarded.notch_excess[0] < MAX_NOTCH_EXCESS < guarded.notch_excess[1]
    assert guarded.share.tolist() == [1.0, 0.5]
    assert torch.allclose(guarded.images[1], inputs[1] + 0.5 * (results[1] - inputs[1]))
    cap = torch.tensor([1.0, 0.4], dtype=torch.float64)  # a lower cap stands; the hedge scales what is kept
    hedges = torch.tensor([0.9, 0.9], dtype=torch.float64)
    assert back_off(inputs, results, SRGB, limit=1e6, max_share=cap, hedges=hedges, lenses=lenses,
                    ringing_share=0.5).share.tolist() == pytest.approx([0.9, 0.36])
    off = back_off(inputs, results, SRGB, limit=1e6, lenses=lenses)  # ringing_share 1: measured, not acted on
    assert off.share.tolist() == [1.0, 1.0] and torch.equal(off.notch_excess, guarded.notch_excess)
    unknown = back_off(inputs, results, SRGB, limit=1e6, lenses=[None, None], ringing_share=0.5)  # e.g. a radius map
    assert unknown.share.tolist() == [1.0, 1.0] and unknown.notch_excess.isnan().all()
    assert guarded.rang.tolist() == [False, True] and not off.rang.any()


def test_a_photo_deblurred_channel_by_channel_is_judged_by_its_worst_channel():
    sharp = gray_crop("camera")
    photo = lens_filter(sharp, LensPSF(0.0, softening=2.0))
    inputs = photo.expand(1, 3, -1, -1)
    result = torch.stack([sharp, wiener(photo, LensPSF(4.0)), sharp])[None]  # the middle channel rings
    per_channel = [(LensPSF(4.0), LensPSF(4.0), LensPSF(0.0))]  # each channel its own lens; the last in focus
    guarded = back_off(inputs, result, SRGB, limit=1e6, lenses=per_channel, ringing_share=0.5)
    assert guarded.notch_excess.item() == pytest.approx(notch_excess(result[0, 1], LensPSF(4.0)))
    assert guarded.share.tolist() == [0.5]
