"""The spectral estimates (hidd.blind.spectrum, psf_fit, defocus, radius_map; hidd.ringing) on the input's device and
in its precision: float32 reads the blurs float64 reads, a batch reads each photo as it is read alone, and the
per-pixel work runs in the input's dtype on its device."""
import dataclasses
import math

import pytest
import torch
from skimage import data
from skimage.transform import resize

import hidd.blind.spectrum
from hidd.blind.defocus import estimate_defocus, estimate_defocus_batch
from hidd.blind.psf_fit import fit_spectra, welch_pyramid
from hidd.blind.spectrum import gray_batch, otf_power, tile_spectra
from hidd.camera import Camera, LensPSF, PoissonGaussian, tone_curve
from hidd.ringing import notch_excess, notch_excess_batch

SRGB = tone_curve("srgb")
FAST = dict(shared_quantile=0.25, edge_read_share=0.5)  # the fast preset's fall-backs
PHOTOS = [("chelsea", 0.0), ("astronaut", 3.0), ("coffee", 6.0)]  # one sharp, one blurred 3 px, one 6 px


def _photo(name: str, radius: float, seed: int, size: int = 128) -> torch.Tensor:
    """A skimage photo's centre square at size², through the camera model with a disk of `radius` (0: in focus),
    decoded to linear light (C, H, W), float64."""
    image = getattr(data, name)() / 255.0
    side = min(image.shape[:2])
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    crop = resize(image[top:top + side, left:left + side], (size, size), anti_aliasing=True)
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float()
    camera = Camera(psf=LensPSF(radius, softening=0.5), noise=PoissonGaussian(1e-4, 1e-3), jpeg_quality=90)
    return SRGB.decode(camera.render(x, generator=torch.Generator().manual_seed(seed))[0].double())


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return torch.stack([_photo(name, radius, seed) for seed, (name, radius) in enumerate(PHOTOS)])


@pytest.fixture(scope="module")
def alone32(photos) -> list:
    return [estimate_defocus(image.float(), **FAST) for image in photos]


def test_float32_reads_the_blurs_float64_reads(photos, alone32):
    for (name, radius), image, single in zip(PHOTOS, photos, alone32):
        double = estimate_defocus(image, **FAST)
        assert (double.lens.radius > 0) == (single.lens.radius > 0) == (radius > 0), name
        assert single.lens.radius == pytest.approx(double.lens.radius, rel=0.02), name
        assert (single.at_bound, single.scale, single.max_share) == (double.at_bound, double.scale, double.max_share)


def _same(a, b) -> bool:
    """The same lens, scale and flags, and the same fitted numbers to rounding."""
    floats = ("noise_floor", "noise_slope", "fit_ratio")
    exact = [f.name for f in dataclasses.fields(a) if f.name not in floats]
    return (all(getattr(a, f) == getattr(b, f) for f in exact)
            and all(getattr(a, f) == pytest.approx(getattr(b, f), rel=1e-6, abs=1e-12) for f in floats))


def test_a_batch_reads_each_photo_as_it_is_read_alone(photos, alone32):
    batch = estimate_defocus_batch(photos.float(), **FAST)
    assert [e.lens.radius > 0 for e in batch] == [False, True, True]
    assert all(_same(a, b) for a, b in zip(batch, alone32))
    assert all(_same(a, b) for a, b in zip(estimate_defocus_batch(photos[[2, 1]].float(), **FAST), batch[:0:-1]))
    with pytest.raises(ValueError, match="expected images"):
        estimate_defocus_batch(photos[0])


def test_fit_spectra_takes_one_candidate_table_per_spectrum(photos):
    pyramid = welch_pyramid(gray_batch(photos, "test"), 30.0)
    spectra, size = pyramid.spectra[1], pyramid.sizes[1]
    candidates = ([0, 3], [3, 0], [6, 0])  # each photo's own order
    tables = torch.stack([torch.stack([otf_power(LensPSF(r), size) for r in radii]) for radii in candidates])
    fitted = fit_spectra(spectra, tables, size)
    assert fitted.residual.shape == (3, 2) and fitted.theta.shape == (3, 2, 4)
    for i in range(3):
        alone = fit_spectra(spectra[i], tables[i], size)
        assert torch.allclose(fitted.residual[i], alone.residual) and torch.allclose(fitted.theta[i], alone.theta)
    assert fitted.residual.argmin(-1).tolist() == [0, 0, 0]  # sharp: 0 beats 3 px; blurred 3 px and 6 px: 3 and 6


def test_the_per_pixel_work_runs_in_the_inputs_dtype_on_its_device(photos, monkeypatch):
    dtypes = []
    rfft2 = torch.fft.rfft2
    def recorded(x, *args, **kwargs):
        dtypes.append(x.dtype)
        return rfft2(x, *args, **kwargs)

    monkeypatch.setattr(torch.fft, "rfft2", recorded)
    pyramid = welch_pyramid(gray_batch(photos.float(), "test"), 30.0)
    assert pyramid.sizes == {1: 128, 2: 64} and set(dtypes) == {torch.float32}
    assert len(dtypes) == 3 * 2  # one FFT call per photo and scale: a photo's spectra do not depend on its batch
    assert all(s.dtype == torch.float64 and s.shape == (3, pyramid.sizes[k] // 2 + 1)
               for k, s in pyramid.spectra.items())
    assert pyramid.first_search.shape[0] == 3
    notch_excess(photos[2].float(), LensPSF(6.0))
    assert len(dtypes) == 7 and dtypes[-1] == torch.float32
    welch_pyramid(gray_batch(photos[:1], "test"), 30.0)  # float64: the reference path
    assert dtypes[7:] == [torch.float64, torch.float64]
    meta = tile_spectra(torch.empty(2, 3, 96, 80, device="meta"), 32, 16)  # no step leaves the device
    assert meta.device.type == "meta" and meta.shape == (2, 3, 5, 4, 17) and meta.dtype == torch.float64
    assert hidd.blind.spectrum.otf_table.cache_info().maxsize is not None  # device tables are bounded


def test_float32_spectra_agree_with_float64(photos):
    gray = photos.mean(dim=1)
    double, single = tile_spectra(gray, 64, 32), tile_spectra(gray.float(), 64, 32)
    assert torch.allclose(single, double, rtol=1e-3)
    assert notch_excess(photos[2].float(), LensPSF(6.0)) == pytest.approx(notch_excess(photos[2], LensPSF(6.0)),
                                                                         abs=1e-3)


def test_a_batch_is_judged_for_ringing_as_each_photo_alone(photos):
    lenses = [LensPSF(0.0), LensPSF(3.0), LensPSF(6.0)]
    batch = notch_excess_batch(photos.float(), lenses)
    assert math.isnan(batch[0]) and math.isfinite(batch[2])  # in focus: no notch to judge
    alone = [notch_excess(image.float(), lens) for image, lens in zip(photos[1:], lenses[1:])]
    assert batch[1:] == pytest.approx(alone, abs=1e-9)
    with pytest.raises(ValueError, match="2 lenses"):
        notch_excess_batch(photos, lenses[:2])


def test_the_tiles_of_a_batch_are_read_as_each_photo_alone(photos):
    from hidd.blind.radius_map import tile_radius_quantiles, tile_radius_quantiles_batch

    together = tile_radius_quantiles_batch(photos, (0.25, 0.75))
    assert together.shape == (len(photos), 2) and together.max() > 0  # the blurred photos' tiles read a blur
    for image, row in zip(photos, together):
        assert tile_radius_quantiles(image, (0.25, 0.75)).tolist() == row.tolist()
