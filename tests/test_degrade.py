"""Tests for the defocus forward model (hidd.degrade) and the oracle baselines."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio

from hidd.baselines import richardson_lucy_deblur, tune, wiener_deblur
from hidd.degrade import (
    blur,
    blur_depth_varying,
    defocus,
    disk_psf,
    disparity_to_radius,
    gaussian_psf,
    otf,
    quantize,
)


def _smooth_image(h=48, w=40, c=3, seed=0):
    """Random but band-limited test image in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, c, h // 4, w // 4, generator=g, dtype=torch.float64)
    return F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _distance(psf):
    half = psf.shape[-1] // 2
    r = torch.arange(-half, half + 1, dtype=torch.float64)
    return torch.sqrt(r[:, None] ** 2 + r[None, :] ** 2)


@pytest.mark.parametrize("radius", [0.7, 2.0, 3.5, 5.0])
def test_disk_psf_normalised_with_matching_support(radius):
    psf = disk_psf(radius, dtype=torch.float64)
    assert psf.shape == (2 * math.ceil(radius) + 1,) * 2
    assert psf.sum().item() == pytest.approx(1.0, abs=1e-12)
    d = _distance(psf)
    # a pixel overlaps the disk only if its centre is within radius + half its diagonal
    assert psf[d <= radius + math.sqrt(0.5)].sum().item() == pytest.approx(1.0, abs=1e-12)
    assert psf[d > radius + math.sqrt(0.5)].abs().sum().item() == 0.0
    if radius >= 2:  # fully covered interior pixels all hold 1 / area
        assert psf[d <= radius - math.sqrt(0.5)].min().item() == pytest.approx(psf.max().item())
        assert 1.0 / psf.max().item() == pytest.approx(math.pi * radius**2, rel=0.03)


def test_disk_psf_delta_and_polygon():
    assert torch.equal(disk_psf(0.0), torch.ones(1, 1))
    hexagon = disk_psf(4.0, blades=6, rotation=0.3, dtype=torch.float64)
    assert hexagon.sum().item() == pytest.approx(1.0, abs=1e-12)
    # inscribed hexagon: area 3*sqrt(3)/2 r^2 < disk area, so a higher interior value
    assert 1.0 / hexagon.max().item() == pytest.approx(1.5 * math.sqrt(3) * 16, rel=0.03)
    assert not torch.allclose(hexagon, hexagon.T)  # rotated: no longer transpose-symmetric
    assert gaussian_psf(1.5).sum().item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("psf", [disk_psf(3.5), gaussian_psf(1.2)])
def test_fft_blur_equals_direct_convolution(psf, dtype):
    x = torch.rand(2, 3, 37, 30, dtype=dtype, generator=torch.Generator().manual_seed(1))
    psf = psf.to(dtype, copy=True)
    # asymmetric PSF so a flip/shift error cannot hide
    psf[0, 1] += 0.05
    psf = psf / psf.sum()
    p = psf.shape[-1] // 2
    direct = F.conv2d(
        F.pad(x, (p, p, p, p), mode="reflect"),
        psf.flip(-1, -2).expand(3, 1, -1, -1),  # conv2d correlates: flip for a convolution
        groups=3,
    )
    assert torch.allclose(blur(x, psf), direct, atol=1e-5)
    # per-image PSFs match the shared PSF when they are equal
    assert torch.allclose(blur(x, psf.expand(2, -1, -1)), direct, atol=1e-5)
    # circular boundary equals a circular-padded direct convolution
    circ = F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), psf.flip(-1, -2).expand(3, 1, -1, -1), groups=3)
    assert torch.allclose(blur(x, psf, boundary="circular"), circ, atol=1e-5)


def test_otf_is_the_blur_filter():
    psf = disk_psf(2.5, dtype=torch.float64)
    H = otf(psf, (16, 20), full=True)
    assert H.shape == (16, 20)
    assert H[0, 0].real.item() == pytest.approx(1.0)  # DC gain of a normalised PSF
    assert torch.allclose(H.imag, torch.zeros_like(H.imag), atol=1e-12)  # centred symmetric PSF
    assert otf(psf, (16, 20)).shape == (16, 11)


def test_constant_image_stays_constant():
    x = torch.full((1, 3, 32, 32), 0.37)
    y = blur(x, disk_psf(5.0))
    assert torch.allclose(y, x, atol=1e-6)


def test_depth_varying_with_constant_map_is_uniform_blur():
    x = _smooth_image()
    uniform = blur(x, disk_psf(3.0, dtype=torch.float64))
    assert torch.allclose(blur_depth_varying(x, torch.full((48, 40), 3.0)), uniform, atol=1e-6)
    # between layers the blend of radius-2.5 and radius-3.5 disks stays close to the radius-3 disk
    blended = blur_depth_varying(x, torch.full((1, 1, 48, 40), 3.0), levels=[1.5, 2.5, 3.5, 4.5])
    assert (blended - uniform).abs().max().item() < 0.02


def test_depth_varying_follows_the_map():
    x = _smooth_image()
    rmap = torch.zeros(48, 40, dtype=torch.float64)
    rmap[:, 20:] = 4.0
    y = blur_depth_varying(x, rmap, levels=5)
    assert torch.allclose(y[..., :, :12], x[..., :, :12], atol=1e-9)  # in focus far from the edge
    assert torch.allclose(y[..., :, 28:], blur(x, disk_psf(4.0, dtype=torch.float64))[..., :, 28:], atol=1e-9)


def test_quantize_multiples_of_1_over_255():
    x = torch.linspace(-0.2, 1.2, 1001, requires_grad=True)
    q = quantize(x, bits=8)
    k = q.detach() * 255
    assert torch.equal(k, torch.round(k))
    assert q.min().item() == 0.0 and q.max().item() == 1.0
    q.sum().backward()  # straight-through gradient inside [0, 1]
    assert x.grad[500].item() == 1.0


def test_defocus_is_seeded_and_in_range():
    x = _smooth_image(32, 32).float()
    a = defocus(x, 2.0, noise_sigma=0.01, generator=torch.Generator().manual_seed(7))
    b = defocus(x, 2.0, noise_sigma=0.01, generator=torch.Generator().manual_seed(7))
    c = defocus(x, 2.0, noise_sigma=0.01, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min().item() >= 0 and a.max().item() <= 1
    # per-image radii: the second image of the batch gets the larger blur
    pair = defocus(x.expand(2, -1, -1, -1), torch.tensor([1.0, 3.0]), bits=None)
    assert torch.allclose(pair[1], blur(x, disk_psf(3.0))[0].clamp(0, 1), atol=1e-6)


def test_defocus_is_differentiable():
    x = _smooth_image(24, 24).float().requires_grad_()
    defocus(x, 2.5).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_disparity_to_radius():
    d = np.array([[10.0, 20.0], [30.0, 50.0]])
    r = disparity_to_radius(d, 30.0, 5.0)
    assert np.allclose(r, [[5.0, 2.5], [0.0, 5.0]])
    assert torch.allclose(disparity_to_radius(torch.tensor(d), 30.0, 5.0), torch.tensor(r))


def test_wiener_and_rl_improve_noiseless_blur():
    sharp = _smooth_image(64, 64, seed=3)[0].permute(1, 2, 0).numpy()
    psf = disk_psf(2.0, dtype=torch.float64)
    blurred = blur(torch.from_numpy(sharp).permute(2, 0, 1)[None], psf)[0].permute(1, 2, 0).numpy()
    base = peak_signal_noise_ratio(sharp, blurred, data_range=1)
    wien = wiener_deblur(blurred, psf.numpy(), balance=1e-3)
    assert wien.shape == sharp.shape and wien.min() >= 0 and wien.max() <= 1
    assert peak_signal_noise_ratio(sharp, wien, data_range=1) > base + 3
    rl = richardson_lucy_deblur(blurred[..., 0], psf.numpy(), iterations=20)  # grayscale input too
    assert peak_signal_noise_ratio(sharp[..., 0], rl, data_range=1) > peak_signal_noise_ratio(
        sharp[..., 0], blurred[..., 0], data_range=1
    )
    assert tune("wiener", [blurred], [sharp], psf.numpy(), [10.0, 1e-3]) == 1e-3
