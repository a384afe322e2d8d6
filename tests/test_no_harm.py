"""The no-harm guard (hidd.no_harm): a result that amplified noise is backed off towards its input, a photo read as
in focus is returned unchanged."""
import torch

from conftest import synthetic_photo
from hidd.camera import tone_curve
from hidd.no_harm import BLEND_NOISE_GAIN, BLEND_SHARES, back_off, noise_gain

SRGB = tone_curve("srgb")


def _photos(amplification: float):
    """(clean, y, results): a clean photo, its noisy input (σ 0.01) and two results: the clean photo and the input
    with its noise amplified `amplification` ×."""
    clean = torch.from_numpy(synthetic_photo(3, 160)).permute(2, 0, 1)[None].double()
    noise = 0.01 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0), dtype=clean.dtype)
    y = clean + noise  # unclipped: the blends' noise is then exactly (1 − w + w · amplification) × the input's
    return clean, torch.cat([y, y]), torch.cat([clean, clean + amplification * noise])


def test_a_cleaner_result_is_kept_and_a_noisier_one_backed_off_to_the_largest_clean_enough_blend():
    clean, inputs, results = _photos(amplification=2.2)  # blends: noise × 1.3, 1.6, 1.9 at w = ¼, ½, ¾
    gain = noise_gain(inputs, results, SRGB)
    assert gain[0] < 1 and 2.05 < gain[1] < 2.35
    guarded = back_off(inputs, results, SRGB, limit=2.0)  # a blend must stay within BLEND_NOISE_GAIN: 1.5
    assert guarded.share.tolist() == [1.0, 0.25] and torch.equal(guarded.noise_gain, gain)
    assert torch.equal(guarded.images[0], clean[0])
    assert torch.allclose(guarded.images[1], inputs[1] + 0.25 * (results[1] - inputs[1]))
    assert noise_gain(inputs[1:], guarded.images[1:], SRGB).item() <= BLEND_NOISE_GAIN
    assert guarded.unchanged.tolist() == [False, False]
    assert back_off(inputs, results, SRGB, limit=2.5).share.tolist() == [1.0, 1.0]  # within the limit: all of it


def test_a_result_too_noisy_at_every_share_and_a_photo_in_focus_come_back_unchanged():
    clean, inputs, results = _photos(amplification=12.0)  # even w = ¼ triples the noise
    assert min(BLEND_SHARES) == 0.25
    guarded = back_off(inputs, results, SRGB, limit=2.0)
    assert guarded.share.tolist() == [1.0, 0.0] and torch.equal(guarded.images[1], inputs[1])
    guarded = back_off(inputs, results, SRGB, limit=2.0, in_focus=torch.tensor([True, False]))
    assert guarded.unchanged.tolist() == [True, True] and torch.equal(guarded.images, inputs)
