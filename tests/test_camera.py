"""Tests for the camera model (hidd.camera): tone curves, lens PSFs, optics, noise, mosaic, codec, pipeline."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio

from hidd.baselines import bm3d_deblur, richardson_lucy_deblur, tune, wiener_deblur
from hidd.baselines.classical import edge_taper
from scipy import ndimage

from hidd.camera import (Camera, Layers, LensPSF, PoissonGaussian, TONE_CURVES, aperture_psf, blur, blur_depth_varying,
                         blur_layered, disparity_to_radius, gaussian_psf, jpeg, otf, quantize, stack_psfs, tone_curve)
from hidd.camera.mosaic import bayer_masks, mosaic_demosaic
from hidd.camera.noise import NoiseLevelFunction


def _smooth_image(h=48, w=40, c=3, seed=0):
    """Random but band-limited test image in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, c, h // 4, w // 4, generator=g, dtype=torch.float64)
    return F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _distance(psf):
    half = psf.shape[-1] // 2
    r = torch.arange(-half, half + 1, dtype=torch.float64)
    return torch.sqrt(r[:, None] ** 2 + r[None, :] ** 2)


# --- tone curves ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TONE_CURVES.names()))
def test_tone_curve_round_trip_and_slope(name):
    curve = tone_curve(name, gamma=2.4)
    linear = torch.linspace(-0.2, 1.2, 2001, dtype=torch.float64)
    assert torch.allclose(curve.decode(curve.encode(linear)), linear, atol=1e-12)
    assert torch.allclose(curve.encode(-linear), -curve.encode(linear))  # odd: sampler excursions stay small
    inside = linear[(linear.abs() > 1e-3)]
    numeric = (curve.encode(inside + 1e-7) - curve.encode(inside - 1e-7)) / 2e-7
    assert torch.allclose(curve.slope(inside), numeric, rtol=1e-4)


def test_srgb_curve_values():
    srgb = tone_curve("srgb")
    assert srgb.encode(torch.tensor([0.0, 0.0031308, 0.18, 1.0], dtype=torch.float64)).tolist() == pytest.approx(
        [0.0, 0.04045, 0.4613561, 1.0], abs=1e-6)
    assert tone_curve("none").is_identity and not srgb.is_identity
    with pytest.raises(ValueError, match="tone_curve"):
        tone_curve("log")


# --- PSF families ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("radius", [0.7, 2.0, 3.5, 5.0])
def test_disk_psf_normalised_with_matching_support(radius):
    psf = aperture_psf(radius, dtype=torch.float64)
    assert psf.shape == (2 * math.ceil(radius) + 1,) * 2
    assert psf.sum().item() == pytest.approx(1.0, abs=1e-12)
    d = _distance(psf)
    # a pixel overlaps the disk only if its centre is within radius + half its diagonal
    assert psf[d > radius + math.sqrt(0.5)].abs().sum().item() == 0.0
    if radius >= 2:  # fully covered interior pixels all hold 1 / area
        assert psf[d <= radius - math.sqrt(0.5)].min().item() == pytest.approx(psf.max().item())
        assert 1.0 / psf.max().item() == pytest.approx(math.pi * radius**2, rel=0.03)


LENSES = [LensPSF(3.5), LensPSF(4.0, blades=6, rotation=0.3), LensPSF(3.0, aberration=0.8),
          LensPSF(3.0, aberration=-0.6, softening=0.7), LensPSF(0.0, softening=1.2),
          LensPSF(4.0, blades=7, rotation=1.0, aberration=0.5, channel_scale=(1.1, 1.0, 0.9), softening=0.5)]


@pytest.mark.parametrize("lens", LENSES, ids=lambda lens: f"r{lens.radius}b{lens.blades}a{lens.aberration}")
def test_psf_families_sum_to_one_and_are_symmetric(lens):
    kernels = lens.kernels(3, dtype=torch.float64)
    assert kernels.shape[-1] % 2 == 1 and kernels.shape[0] in (1, 3)
    assert torch.allclose(kernels.sum(dim=(-2, -1)), torch.ones(kernels.shape[0], dtype=torch.float64))
    assert (kernels >= 0).all()
    centred = torch.allclose(kernels, kernels.flip(-1, -2), atol=1e-12)  # point symmetric about the centre
    round_ = torch.allclose(kernels, kernels.transpose(-1, -2), atol=1e-12)
    if lens.blades == 0:  # circular apertures are symmetric under every flip
        assert centred and round_ and torch.allclose(kernels, kernels.flip(-1), atol=1e-12)
    elif lens.blades % 2 == 1:  # odd polygons have no point symmetry
        assert not centred
    else:
        assert centred and not round_  # rotated even polygon


def test_polygon_area_aberration_profile_and_colour():
    hexagon = aperture_psf(4.0, blades=6, rotation=0.3, dtype=torch.float64)
    assert 1.0 / hexagon.max().item() == pytest.approx(1.5 * math.sqrt(3) * 16, rel=0.03)  # inscribed hexagon
    rim, soft = aperture_psf(6.0, aberration=1.0), aperture_psf(6.0, aberration=-0.8)
    assert rim[6, 6] < rim[6, 10] and soft[6, 6] > soft[6, 10]  # bright rim / bright centre
    colour = LensPSF(4.0, channel_scale=(1.25, 1.0, 0.75)).kernels(3)
    spread = [(p * _distance(p) ** 2).sum().item() for p in colour]
    assert spread[0] > spread[1] > spread[2]
    assert gaussian_psf(1.5).sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(aperture_psf(0.0), torch.ones(1, 1))
    with pytest.raises(ValueError, match="channel_scale"):
        LensPSF(2.0, channel_scale=(1.0, 1.0)).kernels(3)
    stacked = stack_psfs([aperture_psf(1.0), aperture_psf(3.0)])
    assert stacked.shape == (2, 7, 7) and torch.allclose(stacked.sum(dim=(-2, -1)), torch.ones(2))


# --- optics ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("psf", [aperture_psf(3.5), gaussian_psf(1.2)])
def test_fft_blur_equals_direct_convolution(psf, dtype):
    x = torch.rand(2, 3, 37, 30, dtype=dtype, generator=torch.Generator().manual_seed(1))
    psf = psf.to(dtype, copy=True)
    psf[0, 1] += 0.05  # asymmetric, so a flip or shift error cannot hide
    psf = psf / psf.sum()
    p = psf.shape[-1] // 2
    kernel = psf.flip(-1, -2).expand(3, 1, -1, -1)  # conv2d correlates: flip for a convolution
    direct = F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), kernel, groups=3)
    assert torch.allclose(blur(x, psf), direct, atol=1e-5)
    assert torch.allclose(blur(x, psf.expand(2, -1, -1)), direct, atol=1e-5)  # one PSF per image
    assert torch.allclose(blur(x, psf.expand(2, 3, -1, -1)), direct, atol=1e-5)  # one per image and channel
    circ = F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), kernel, groups=3)
    assert torch.allclose(blur(x, psf, boundary="circular"), circ, atol=1e-5)


def test_otf_is_the_blur_filter_and_constants_stay():
    psf = aperture_psf(2.5, dtype=torch.float64)
    H = otf(psf, (16, 20), full=True)
    assert H.shape == (16, 20) and H[0, 0].real.item() == pytest.approx(1.0)
    assert torch.allclose(H.imag, torch.zeros_like(H.imag), atol=1e-12)  # centred symmetric PSF
    assert otf(psf, (16, 20)).shape == (16, 11)
    x = torch.full((1, 3, 32, 32), 0.37)
    assert torch.allclose(blur(x, aperture_psf(5.0)), x, atol=1e-6)


def test_depth_varying_blur():
    x = _smooth_image()
    disk = lambda r: aperture_psf(r, dtype=torch.float64)  # noqa: E731
    uniform = blur(x, disk(3.0))
    assert torch.allclose(blur_depth_varying(x, torch.full((48, 40), 3.0), disk), uniform, atol=1e-6)
    blended = blur_depth_varying(x, torch.full((1, 1, 48, 40), 3.0), disk, levels=[1.5, 2.5, 3.5, 4.5])
    assert (blended - uniform).abs().max().item() < 0.02  # between layers: close to the radius-3 disk
    rmap = torch.zeros(48, 40, dtype=torch.float64)
    rmap[:, 20:] = 4.0
    y = blur_depth_varying(x, rmap, disk, levels=5)
    assert torch.allclose(y[..., :, :12], x[..., :, :12], atol=1e-9)  # in focus far from the edge
    assert torch.allclose(y[..., :, 28:], blur(x, disk(4.0))[..., :, 28:], atol=1e-9)


def _disk_alpha(size=48, centre=(24.0, 22.0), radius=11.0, supersample=4) -> torch.Tensor:
    """A disk's coverage (size, size), each pixel the share of its sub-pixels inside: a soft edge about 1 px wide."""
    sub = (torch.arange(size * supersample, dtype=torch.float64) + 0.5) / supersample
    inside = ((sub[:, None] - centre[0]) ** 2 + (sub[None, :] - centre[1]) ** 2 <= radius ** 2).double()
    return inside.reshape(size, supersample, size, supersample).mean(dim=(1, 3))


def _subject_on_background(alpha):
    """A red subject (coverage alpha) on a flat green background: (photo x, the background's colour)."""
    green = torch.tensor([0.1, 0.6, 0.2], dtype=torch.float64)[None, :, None, None]
    red = torch.tensor([0.9, 0.1, 0.1], dtype=torch.float64)[None, :, None, None]
    return alpha * red + (1 - alpha) * green, green


def test_layered_blur_is_linear_keeps_flat_images_and_with_one_layer_is_the_plain_blur():
    x = _smooth_image(48, 48)
    disk = aperture_psf(4.0, dtype=torch.float64)
    assert torch.equal(blur_layered(x, torch.ones(1, 48, 48, dtype=torch.float64), [disk]), blur(x, disk))
    g = torch.Generator().manual_seed(1)
    soft = lambda: F.interpolate(torch.rand(1, 1, 6, 6, generator=g, dtype=torch.float64), size=(48, 48),  # noqa: E731
                                 mode="bilinear", align_corners=False)
    alphas = torch.cat([torch.ones(1, 1, 48, 48, dtype=torch.float64), soft(), (soft() > 0.6).double()], dim=1)
    lateral = LensPSF(3.0, channel_scale=(0.9, 1.0, 1.1)).kernels(3, torch.float64)[None]  # per channel (1, 3, K, K)
    psfs = [aperture_psf(5.0, dtype=torch.float64), lateral, gaussian_psf(0.7, dtype=torch.float64)]
    x2 = _smooth_image(48, 48, seed=3)
    mixed = blur_layered(2 * x - 3 * x2, alphas, psfs)
    assert torch.allclose(mixed, 2 * blur_layered(x, alphas, psfs) - 3 * blur_layered(x2, alphas, psfs), atol=1e-12)
    flat = torch.full_like(x, 0.37)
    assert torch.allclose(blur_layered(flat, alphas, psfs), flat, atol=1e-12)  # the fill continues a flat scene
    binary = (alphas > 0.5).double()
    binary[:, 0] = 1
    delta = torch.ones(1, 1, dtype=torch.float64)
    assert torch.allclose(blur_layered(x, binary, [delta] * 3), x, atol=1e-12)  # all in focus: the photo
    leaf = x.clone().requires_grad_(True)
    blur_layered(leaf, alphas.float().double(), psfs).sum().backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0


def test_an_in_focus_subject_stays_sharp_and_its_colour_does_not_reach_the_blurred_background():
    alpha = _disk_alpha()
    x, green = _subject_on_background(alpha)
    disk = aperture_psf(6.0, dtype=torch.float64)
    y = blur_layered(x, Layers.subject(alpha, 6.0).alphas, [disk, torch.ones(1, 1, dtype=torch.float64)])
    on_subject = alpha == 1
    assert torch.allclose(y[..., on_subject], x[..., on_subject], atol=1e-12)  # sharp where it covers the pixel
    beyond = torch.from_numpy(ndimage.distance_transform_edt(alpha.numpy() == 0))  # px from the subject's edge
    # the background beside the subject continues behind it: its own colour, neither tinted nor darkened (the rays
    # of a pixel beside an in-focus subject pass beside it); only the soft edge's mixed pixels, which count for
    # the background too, tint it a little, within the background's blur
    assert (y - green)[..., beyond > 7].abs().max() < 1e-9
    assert (y - green)[..., beyond > 1].abs().max() < 0.05
    gathered = blur_depth_varying(x, Layers.subject(alpha, 6.0).radius_map(),
                                  lambda r: aperture_psf(r, dtype=torch.float64))
    assert (gathered - green)[..., beyond > 1].abs().max() > 0.2  # the gather model: the subject bleeds 6 px out
    no_fill = blur(x * (1 - alpha), disk) * (1 - alpha) + x * alpha  # the background's hidden part left black
    assert (no_fill - green)[..., beyond > 1].abs().max() > 0.1
    sharp_edged = (alpha > 0.5).double()  # a hard-edged subject: nothing of it beside it at all
    x, green = _subject_on_background(sharp_edged)
    y = blur_layered(x, Layers.subject(sharp_edged, 6.0).alphas, [disk, torch.ones(1, 1, dtype=torch.float64)])
    assert torch.allclose(y, torch.where(sharp_edged.bool(), x, green), atol=1e-9)


def test_a_defocused_subject_spreads_over_the_sharp_background_as_a_rim():
    alpha = _disk_alpha()
    x, green = _subject_on_background(alpha)
    y = blur_layered(x, Layers.subject(alpha, 0.0, 4.0).alphas,
                     [torch.ones(1, 1, dtype=torch.float64), aperture_psf(4.0, dtype=torch.float64)])
    beyond = torch.from_numpy(ndimage.distance_transform_edt(alpha.numpy() == 0))
    deep = torch.from_numpy(ndimage.distance_transform_edt(alpha.numpy() == 1))
    assert torch.allclose(y[..., beyond > 5], x[..., beyond > 5], atol=1e-9)  # the background beyond its rim: sharp
    assert torch.allclose(y[..., deep > 5], x[..., deep > 5], atol=1e-9)  # the subject's middle: its own colour
    rim = (beyond > 1) & (beyond < 2.5)
    assert (y[0, 0][rim] > green[0, 0, 0, 0] + 0.05).all()  # its red over the background, within its blur
    assert (y[0, 0] >= green[0, 0, 0, 0] - 1e-9).all() and (y[0, 0] <= 0.9 + 1e-9).all()  # a blend, no halo


def test_camera_renders_a_layered_scene_in_the_images_dtype():
    alpha = _disk_alpha(32, (16.0, 16.0), 7.0)
    layers = Layers.subject(alpha, 5.0)
    assert torch.allclose(layers.radius_map(), 5.0 * (1 - alpha))
    assert Layers.subject(alpha[None, None], 5.0).radius_map().shape == (1, 1, 32, 32)
    x, _ = _subject_on_background(alpha)
    camera = Camera(psf=LensPSF(5.0, channel_scale=(0.95, 1.0, 1.05), softening=0.5), bits=None)
    y = camera.render(x, layers=layers)
    assert y.dtype == torch.float64 and y.shape == x.shape
    lens = [camera.psf.with_radius(r).kernels(3, torch.float64)[None] for r in (5.0, 0.0)]
    tone = tone_curve("srgb")
    assert torch.allclose(y, tone.encode(blur_layered(tone.decode(x), layers.alphas, lens).clamp(0, 1)), atol=1e-12)
    with pytest.raises(ValueError, match="not both"):
        camera.render(x, layers=layers, radius_map=torch.ones(32, 32))
    with pytest.raises(ValueError, match="2 radii"):
        Layers(alpha[None], (1.0, 2.0))


def test_disparity_to_radius():
    d = np.array([[10.0, 20.0], [30.0, 50.0]])
    r = disparity_to_radius(d, 30.0, 5.0)
    assert np.allclose(r, [[5.0, 2.5], [0.0, 5.0]])
    assert torch.allclose(disparity_to_radius(torch.tensor(d), 30.0, 5.0), torch.tensor(r))


# --- noise, mosaic, codec -------------------------------------------------------------------------------------

def test_poisson_gaussian_noise_and_its_level_through_the_tone_curve():
    noise = PoissonGaussian(shot=4e-4, read=2e-3)
    for level in (0.05, 0.5):
        linear = torch.full((1, 1, 200, 200), level, dtype=torch.float64)
        sample = noise.sample(linear, torch.Generator().manual_seed(0))
        assert sample.std().item() == pytest.approx(math.sqrt(4e-4 * level + 4e-6), rel=0.03)
        srgb = tone_curve("srgb")
        encoded = srgb.encode(sample)
        expected = noise.encoded_std(srgb.encode(linear), srgb)[0, 0, 0, 0].item()
        assert encoded.std().item() == pytest.approx(expected, rel=0.05)
        nlf = NoiseLevelFunction(srgb, torch.tensor([4e-4]), torch.tensor([2e-3]), torch.tensor([0.0]))
        assert nlf.std(srgb.encode(linear))[0, 0, 0, 0].item() == pytest.approx(expected, rel=1e-6)
    assert torch.equal(PoissonGaussian().sample(linear), linear)


def test_demosaic_keeps_sampled_pixels_and_flat_colours():
    x = _smooth_image(16, 16)
    out = mosaic_demosaic(x)
    masks = bayer_masks(16, 16, dtype=x.dtype).bool()
    assert torch.allclose(out[0][masks], x[0][masks])  # each pixel keeps the colour it sampled
    flat = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64).reshape(1, 3, 1, 1).expand(1, 3, 16, 16)
    assert torch.allclose(mosaic_demosaic(flat), flat)
    with pytest.raises(ValueError, match="3 channels"):
        mosaic_demosaic(x[:, :1])


def test_quantize_and_jpeg():
    x = torch.linspace(-0.2, 1.2, 1001, requires_grad=True)
    q = quantize(x, bits=8)
    k = q.detach() * 255
    assert torch.equal(k, torch.round(k)) and q.min().item() == 0.0 and q.max().item() == 1.0
    q.sum().backward()  # straight-through gradient inside [0, 1]
    assert x.grad[500].item() == 1.0
    image = _smooth_image(64, 64).float()
    error = [(jpeg(image, quality) - image).abs().mean().item() for quality in (30, 95)]
    assert 0 < error[1] < error[0] < 0.1
    with pytest.raises(ValueError, match="quality"):
        jpeg(image, 0)


# --- the whole camera -----------------------------------------------------------------------------------------

def test_camera_render_is_seeded_in_range_and_blurs_linear_light():
    x = _smooth_image(32, 32).float()
    camera = Camera(psf=LensPSF(2.0, blades=6), noise=PoissonGaussian(1e-4, 1e-3), demosaic=True, jpeg_quality=90)
    a, b = (camera.render(x, generator=torch.Generator().manual_seed(7)) for _ in range(2))
    c = camera.render(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min().item() >= 0 and a.max().item() <= 1
    exact = Camera(psf=LensPSF(2.0), bits=None).render(x.double())
    srgb = tone_curve("srgb")
    assert torch.allclose(exact, srgb.encode(blur(srgb.decode(x.double()), aperture_psf(2.0, dtype=torch.float64))))
    assert not torch.allclose(exact, blur(x.double(), aperture_psf(2.0, dtype=torch.float64)), atol=1e-3)
    values = Camera(psf=LensPSF(2.0), tone="none", bits=None).render(x.double())  # the sRGB-disk benchmark's model
    assert torch.allclose(values, blur(x.double(), aperture_psf(2.0, dtype=torch.float64)).clamp(0, 1))


def test_wiener_and_rl_improve_noiseless_blur():
    sharp = _smooth_image(64, 64, seed=3)[0].permute(1, 2, 0).numpy()
    psf = aperture_psf(2.0, dtype=torch.float64)
    blurred = blur(torch.from_numpy(sharp).permute(2, 0, 1)[None], psf)[0].permute(1, 2, 0).numpy()
    base = peak_signal_noise_ratio(sharp, blurred, data_range=1)
    wien = wiener_deblur(blurred, psf.numpy(), balance=1e-3)
    assert wien.shape == sharp.shape and wien.min() >= 0 and wien.max() <= 1
    assert peak_signal_noise_ratio(sharp, wien, data_range=1) > base + 3
    rl = richardson_lucy_deblur(blurred[..., 0], psf.numpy(), iterations=20)  # grayscale input too
    assert peak_signal_noise_ratio(sharp[..., 0], rl, data_range=1) > peak_signal_noise_ratio(
        sharp[..., 0], blurred[..., 0], data_range=1)
    assert tune("wiener", [blurred], [sharp], psf.numpy(), [10.0, 1e-3]) == 1e-3


def test_edge_taper_removes_the_jump_at_the_periodic_border_and_keeps_the_interior():
    image = np.tile(np.linspace(0.0, 1.0, 64), (64, 1))  # a ramp: a jump of 1 where it wraps around
    psf = aperture_psf(3.0, dtype=torch.float64).numpy()
    tapered = edge_taper(image, psf)
    assert abs(tapered[:, 0] - tapered[:, -1]).max() < 0.25 * abs(image[:, 0] - image[:, -1]).max()
    assert np.allclose(tapered[:, 16:48], image[:, 16:48])  # beyond the PSF's reach of the border: untouched


def test_bm3d_deblurring_improves_a_noisy_blur():
    pytest.importorskip("bm3d")  # the optional extra hidd[bm3d]
    sharp = _smooth_image(64, 64, seed=3)[0].permute(1, 2, 0).numpy()
    psf = aperture_psf(2.0, dtype=torch.float64)
    blurred = blur(torch.from_numpy(sharp).permute(2, 0, 1)[None], psf)[0].permute(1, 2, 0).numpy()
    noisy = blurred + 0.01 * np.random.default_rng(0).standard_normal(blurred.shape)
    restored = bm3d_deblur(noisy[..., 0], psf.numpy(), 0.01)  # one channel: bm3d ≥ 4.0.2 failed on 2-D images
    assert restored.shape == noisy.shape[:2]
    assert peak_signal_noise_ratio(sharp[..., 0], restored, data_range=1) > peak_signal_noise_ratio(
        sharp[..., 0], noisy[..., 0], data_range=1) + 1
