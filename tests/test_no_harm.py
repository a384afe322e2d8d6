"""The no-harm guard (hidd.no_harm): a result that amplified noise, or a photo read as in focus, is returned unchanged."""
import torch

from conftest import synthetic_photo
from hidd.camera import tone_curve
from hidd.no_harm import keep_unharmed, noise_gain

SRGB = tone_curve("srgb")


def test_a_noisier_result_is_replaced_by_its_input_and_a_cleaner_one_kept():
    clean = torch.from_numpy(synthetic_photo(3, 160)).permute(2, 0, 1)[None].double()
    g = torch.Generator().manual_seed(0)
    y = (clean + 0.01 * torch.randn(clean.shape, generator=g, dtype=clean.dtype)).clamp(0, 1)
    amplified = (clean + 0.05 * torch.randn(clean.shape, generator=g, dtype=clean.dtype)).clamp(0, 1)
    results = torch.cat([clean, amplified])
    inputs = torch.cat([y, y])
    gain = noise_gain(inputs, results, SRGB)
    assert gain[0] < 1 < 3 < gain[1]
    images, measured, kept = keep_unharmed(inputs, results, SRGB, limit=2.0)
    assert kept.tolist() == [False, True] and torch.equal(measured, gain)
    assert torch.equal(images[0], clean[0]) and torch.equal(images[1], y[0])
    images, _, kept = keep_unharmed(inputs, results, SRGB, limit=2.0, in_focus=torch.tensor([True, False]))
    assert kept.tolist() == [True, True] and torch.equal(images, inputs)
