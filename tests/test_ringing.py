"""The ringing measure (hidd.ringing): a deconvolution by a PSF the photo was not blurred with piles power up at that
PSF's OTF notches; one by the right PSF, and a sharp photo, do not."""
import math

import pytest
import torch

from conftest import gray_crop, lens_filter, wiener
from hidd.camera.psf import LensPSF
from hidd.no_harm import MAX_NOTCH_EXCESS
from hidd.ringing import notch_excess

DISK = LensPSF(4.0)


@pytest.mark.parametrize("name", ["camera", "astronaut", "coffee"])
def test_a_deconvolution_by_the_wrong_psf_rings_at_its_notch_and_one_by_the_right_psf_does_not(name):
    sharp = gray_crop(name)
    noise = 0.002 * torch.randn(sharp.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert notch_excess(sharp, DISK) < 0.6  # a photo's spectrum falls smoothly through the notch's frequency
    right = wiener(lens_filter(sharp, DISK) + noise, DISK)  # the notch holds nothing, and Wiener adds nothing there
    assert notch_excess(right, DISK) < 0.6
    wrong = wiener(lens_filter(sharp, LensPSF(0.0, softening=2.0)) + noise, DISK)  # a soft blur taken for a disk
    assert notch_excess(wrong, DISK) > MAX_NOTCH_EXCESS + 0.8
    colour = wrong.expand(3, -1, -1)  # (C, H, W): judged on the channel mean
    assert notch_excess(colour, DISK) == pytest.approx(notch_excess(wrong, DISK))


def test_no_notch_or_too_small_an_image_gives_no_judgement():
    sharp = gray_crop("camera")
    assert math.isnan(notch_excess(sharp, LensPSF(0.0)))  # in focus
    assert math.isnan(notch_excess(sharp, LensPSF(0.0, softening=2.0)))  # a Gaussian has no zero
    assert math.isnan(notch_excess(sharp[:12, :12], DISK))  # too few frequencies
    assert math.isnan(notch_excess(sharp[:32, :32], LensPSF(16.0)))  # its notch below the tiles' lowest ring
    assert math.isnan(notch_excess(sharp, LensPSF(1.5)))  # first notch at 0.41 cycles/px: JPEG's and texture's band


def test_the_notches_are_the_apertures_whatever_its_softening():
    sharp = gray_crop("camera")  # a truncated Gaussian's OTF has near-zeros of its own, which are not the lens's
    assert notch_excess(sharp, LensPSF(3.0, softening=3.0)) == notch_excess(sharp, LensPSF(3.0))
