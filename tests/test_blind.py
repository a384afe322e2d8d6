"""Blind estimation of the camera (hidd.blind: lens PSF, radius map, noise-level function) on the camera model,
and the blind deblurring path end to end."""
import argparse
import dataclasses
import importlib.util
import json
import re
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data
from skimage.transform import resize

from conftest import synthetic_photo
from hidd.blind import estimate_defocus, estimate_nlf, estimate_defocus_map, estimate_psf
import hidd.blind.defocus
import hidd.blind.edge_bound
from hidd.blind import PSFEstimate
from hidd.blind.defocus import CORROBORATED_MARGIN, EDGE_READ_MIN_RADIUS, MAX_BAND_EXCESS, MAX_FIT_RATIO
from hidd.blind.edge_bound import MAX_EDGE_SHARPNESS, edge_read_radius, edge_sharpness
from hidd.blind.noise import band_excess
import hidd.blind.psf_fit
from hidd.blind.psf_fit import IN_FOCUS_MARGIN, MAX_LENS_SOFTENING, estimate_for_lens
from hidd.blind.radius_map import tile_radius_quantiles
from hidd.camera import Camera, LensPSF, PoissonGaussian, add_white_noise, blur, quantize, tone_curve
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.imageio import read_image, write_image
from hidd.prior import DEFAULT_CHECKPOINT, load_prior

BENCHMARK = Path(__file__).resolve().parent.parent / "data" / "benchmark"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
needs_benchmark = pytest.mark.skipif(not (BENCHMARK / "meta.json").is_file(),
                                     reason="no data/benchmark (run scripts/make_benchmark.py)")
SRGB = tone_curve("srgb")


def photo(name: str, size: int = 256, width: int | None = None) -> torch.Tensor:
    """A bundled skimage photo, centre crop resized to size × width (default square), as (1, C, H, W) in [0, 1]."""
    image = getattr(data, name)() / 255.0
    image = image[..., None] if image.ndim == 2 else image
    h, w = image.shape[:2]
    width = width or size
    crop_h, crop_w = (h, round(h * width / size)) if w * size >= h * width else (round(w * size / width), w)
    crop = image[(h - crop_h) // 2:(h + crop_h) // 2, (w - crop_w) // 2:(w + crop_w) // 2]
    return torch.from_numpy(resize(crop, (size, width), anti_aliasing=True)).permute(2, 0, 1)[None].float()


def linear(y: torch.Tensor) -> torch.Tensor:
    return SRGB.decode(y[0].double())


CAMERA_LENSES = [  # lens PSFs a camera makes: blades, aberration of either sign, lateral colour, softening
    dict(blades=6, rotation=0.4, aberration=0.5, softening=0.5),
    dict(blades=0, aberration=-0.5, channel_scale=(1.08, 1.0, 0.93), softening=0.7),
    dict(blades=9, rotation=1.1, aberration=0.9, softening=0.3),
]


@pytest.mark.parametrize("radius", [2.0, 3.5, 5.0, 8.0])
def test_radius_within_ten_percent_on_the_camera_model(radius):
    for seed, (name, lens) in enumerate(zip(("astronaut", "coffee", "chelsea"), CAMERA_LENSES)):
        camera = Camera(psf=LensPSF(radius, **lens), noise=PoissonGaussian(1e-4, 1e-3), demosaic=True,
                        jpeg_quality=85 + 5 * seed)
        y = camera.render(photo(name), generator=torch.Generator().manual_seed(seed))
        assert estimate_psf(linear(y)).lens.radius == pytest.approx(radius, rel=0.10), name


def test_the_fitted_softening_is_capped_at_what_a_lens_makes(monkeypatch):
    # a fall-off steeper than diffraction and the sensor make (here a 1.5 px Gaussian; in photos JPEG's and
    # demosaicing's) is not deconvolved as the lens's: the radius is read, the softening kept at the cap
    camera = Camera(psf=LensPSF(6.0, softening=1.5), noise=PoissonGaussian(1e-4, 1e-3), demosaic=True, jpeg_quality=85)
    y = linear(camera.render(photo("coffee"), generator=torch.Generator().manual_seed(0)))
    lens = estimate_psf(y).lens
    assert lens.radius == pytest.approx(6.0, rel=0.10) and lens.softening <= MAX_LENS_SOFTENING
    monkeypatch.setattr(hidd.blind.psf_fit, "MAX_LENS_SOFTENING", 10.0)
    assert estimate_psf(y).lens.softening > MAX_LENS_SOFTENING  # what the fit alone would take for the lens


@pytest.mark.parametrize("radius", [12.0, 25.0])
def test_large_radius_on_a_full_resolution_photo(radius):
    # DPDD's size; the finest scale's window cannot resolve this blur and must not call it in focus
    x = photo("astronaut", 1120, 1680)
    camera = Camera(psf=LensPSF(radius, blades=8, aberration=0.3, softening=0.7), noise=PoissonGaussian(1e-4, 1e-3),
                    jpeg_quality=90)
    estimate = estimate_psf(linear(camera.render(x, generator=torch.Generator().manual_seed(0))))
    assert estimate.lens.radius == pytest.approx(radius, rel=0.15) and estimate.scale > 1


@pytest.mark.parametrize("radius", [6.0, 10.0, 16.0])
def test_a_strongly_blurred_photo_is_not_read_as_in_focus(radius):
    camera = Camera(psf=LensPSF(radius, softening=1.0), noise=PoissonGaussian(2e-4, 2e-3), jpeg_quality=80)
    for seed, name in enumerate(("rocket", "chelsea")):  # rocket: flat sky, little texture left to see
        y = camera.render(photo(name, 384), generator=torch.Generator().manual_seed(seed))
        assert estimate_psf(linear(y)).lens.radius > 0.5 * radius, name


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "camera", "rocket"])
def test_sharp_photos_read_in_focus(name):
    estimate = estimate_psf(linear(photo(name)))
    assert estimate.lens.radius == 0.0 and not estimate.at_bound
    # ... and their tiles do not share a blur either (rocket's flat sky fits 8–10 px on a third of them), nor do
    # their edges allow one
    assert estimate_defocus(linear(photo(name)), shared_quantile=0.25, edge_read_share=0.5).lens.radius == 0.0


def test_a_depth_varying_photo_read_in_focus_overall_gets_the_blur_most_of_it_shares():
    # in focus at the left edge, 6 px at the right, through a lens camera: the sharp part dominates the spectrum
    radius_map = torch.linspace(0.0, 6.0, 256)[None, :].expand(256, 256)
    camera = Camera(psf=LensPSF(1.0, blades=6, aberration=0.3, softening=0.5), noise=PoissonGaussian(1e-4, 1e-3),
                    demosaic=True, jpeg_quality=90)
    y = linear(camera.render(photo("chelsea"), radius_map=radius_map, generator=torch.Generator().manual_seed(0)))
    assert estimate_psf(y).lens.radius == 0.0
    lens = estimate_defocus(y, shared_quantile=0.25).lens
    assert 1.0 <= lens.radius <= 0.75 * 6.0 * 0.8  # a blur, below what three quarters of the photo reach
    assert estimate_defocus(y).lens.radius == 0.0  # shared_quantile 0: off
    with pytest.raises(ValueError, match="shared_quantile"):
        estimate_defocus(y, shared_quantile=0.5)


def test_a_sharp_photo_that_is_mostly_sky_stays_in_focus():
    # flat tiles fit large blurs: the sky's read 8–10 px, but the sharp strip below makes the whole-photo
    # spectrum reject such a PSF, so the tiles' blur does not stand in for the photo's
    x = photo("astronaut", 512)[0]
    ramp = torch.linspace(0.0, 1.0, 512)
    x[:, :400] = (0.35 + 0.4 * ramp[:400, None] + 0.1 * ramp[None, :])[None] * torch.tensor([1.0, 0.8, 1.0])[:, None, None]
    y = linear(quantize(add_white_noise(x[None], 0.003, torch.Generator().manual_seed(0))))
    low, _ = tile_radius_quantiles(y, (0.25, 0.75))
    assert low > 5.0 and estimate_psf(y).lens.radius == 0.0
    assert estimate_for_lens(y, LensPSF(0.8 * low, softening=0.6)).fit_ratio > MAX_FIT_RATIO
    assert estimate_defocus(y, shared_quantile=0.25).lens.radius == 0.0


def test_tiles_that_agree_on_a_blur_the_whole_photo_fit_rejects_do_not_override_it():
    # a uniform 5 px blur beyond the search range (max_radius 4): the whole-photo fit reads it in focus, and
    # the tiles, which all read 5 px, are no depth variation to fall back on
    y = linear(Camera(psf=LensPSF(5.0, softening=0.5), noise=PoissonGaussian(1e-4, 1e-3)).render(
        photo("astronaut"), generator=torch.Generator().manual_seed(0)))
    assert estimate_psf(y, max_radius=4.0).lens.radius == 0.0
    assert estimate_defocus(y, max_radius=4.0, shared_quantile=0.25).lens.radius == 0.0


@pytest.mark.parametrize("radius", [5.0, 8.0])  # below ~4 px a sharp edge is no longer far steeper than a blurred one
def test_edge_sharpness_tells_a_disk_blur_from_a_sharp_photo(radius):
    # a blur of radius r leaves no edge steeper than its line spread allows; a sharp photo has many
    camera = Camera(psf=LensPSF(radius, blades=7, aberration=0.5, softening=0.5), noise=PoissonGaussian(2e-4, 2e-3),
                    demosaic=True, jpeg_quality=75)
    for seed, name in enumerate(("astronaut", "rocket", "chelsea")):
        x = photo(name)
        blurred = linear(camera.render(x, generator=torch.Generator().manual_seed(seed)))
        assert edge_sharpness(blurred, radius) <= 1.1, name
        assert edge_sharpness(linear(x), radius) > MAX_EDGE_SHARPNESS, name


def test_the_bokeh_discs_of_point_lights_do_not_count_as_sharp_edges(monkeypatch):
    # a light seen through the lens is the PSF itself, whose rim is steep: its disc is left out
    camera = Camera(psf=LensPSF(8.0, blades=6, softening=0.5), noise=PoissonGaussian(1e-4, 1e-3))
    scene = SRGB.decode(photo("coffee")) * 0.3  # dim, with 12 small lights up to 20× brighter than white
    rng = np.random.default_rng(0)
    for i, j in rng.integers(10, 244, size=(12, 2)):
        scene[..., i:i + 2, j:j + 2] += float(rng.uniform(2.0, 20.0))
    y = SRGB.encode(camera.noise.sample(camera.linear_blur(scene, None, 8), torch.Generator().manual_seed(0)).clamp(0, 1))
    lit = linear(quantize(y))
    assert edge_sharpness(lit, 8.0) <= 1.1
    monkeypatch.setattr(hidd.blind.edge_bound, "HIGHLIGHT_FACTOR", math.inf)  # the discs counted: a "sharp" photo
    assert edge_sharpness(lit, 8.0) > MAX_EDGE_SHARPNESS


def test_a_blur_only_a_coarser_scale_saw_must_fit_the_full_resolution_spectrum_the_edges_and_the_noise(monkeypatch):
    # sharp photos whose coarse spectrum mimics a blur (a moss macro, a lake at dusk: 8–16 px) were ruined by
    # deblurring at that radius; each of the three checks alone rejects such a blur on a sharp photo
    def misread(found_scale):
        return PSFEstimate(LensPSF(9.0, softening=0.5), 2, False, 1e-6, 0.0, fit_ratio=0.5, found_scale=found_scale)

    sharp = linear(photo("astronaut"))
    blurred = linear(Camera(psf=LensPSF(9.0, softening=0.5), noise=PoissonGaussian(1e-4, 1e-3)).render(
        photo("astronaut"), generator=torch.Generator().manual_seed(0)))
    monkeypatch.setattr(hidd.blind.defocus, "estimate_psf", lambda *args, **kwargs: misread(2))
    rejected = estimate_defocus(sharp)
    assert rejected.lens.radius == 0.0 and rejected.scale == 1 and not rejected.at_bound
    assert estimate_defocus(blurred) == misread(2)  # a real blur passes all three
    with monkeypatch.context() as only_edges:
        only_edges.setattr(hidd.blind.defocus, "MAX_FINEST_FIT_RATIO", math.inf)
        only_edges.setattr(hidd.blind.defocus, "MAX_BAND_EXCESS", math.inf)
        assert estimate_defocus(sharp).lens.radius == 0.0
    with monkeypatch.context() as only_spectrum:
        only_spectrum.setattr(hidd.blind.defocus, "edge_sharpness", lambda *args: 0.0)
        only_spectrum.setattr(hidd.blind.defocus, "MAX_BAND_EXCESS", math.inf)
        assert estimate_defocus(sharp).lens.radius == 0.0
    with monkeypatch.context() as only_noise:  # the band beyond the blur's main lobe holds detail, not noise
        only_noise.setattr(hidd.blind.defocus, "MAX_FINEST_FIT_RATIO", math.inf)
        only_noise.setattr(hidd.blind.defocus, "edge_sharpness", lambda *args: 0.0)
        assert estimate_defocus(sharp).lens.radius == 0.0
        assert band_excess(sharp, LensPSF(9.0), tone_curve("none")) > MAX_BAND_EXCESS
        assert band_excess(blurred, LensPSF(9.0), tone_curve("none")) < MAX_BAND_EXCESS / 2
        gray = sharp.mean(dim=0)  # a 2-D image is one channel
        assert band_excess(gray, LensPSF(9.0), tone_curve("none")) == band_excess(gray[None], LensPSF(9.0),
                                                                                   tone_curve("none"))
    monkeypatch.setattr(hidd.blind.defocus, "estimate_psf", lambda *args, **kwargs: misread(1))
    assert estimate_defocus(blurred) == misread(1)
    assert estimate_defocus(sharp).lens.radius == 0.0  # what the finest scale saw is asked the noise alone
    monkeypatch.setattr(hidd.blind.defocus, "MAX_BAND_EXCESS", math.inf)
    assert estimate_defocus(sharp) == misread(1)


@pytest.mark.parametrize("radius", [4.0, 8.0])
def test_the_edges_read_the_blur_of_a_blurred_photo_and_none_on_a_sharp_one(radius):
    camera = Camera(psf=LensPSF(radius, blades=7, aberration=0.3, softening=0.5), noise=PoissonGaussian(2e-4, 2e-3),
                    demosaic=True, jpeg_quality=85)
    for seed, name in enumerate(("astronaut", "rocket", "chelsea")):
        blurred = linear(camera.render(photo(name), generator=torch.Generator().manual_seed(seed)))
        # read as blurred, and not more: textured photos read short at 8 px (4.5–6.5), their strongest ranges
        # spanning several features
        assert EDGE_READ_MIN_RADIUS <= edge_read_radius(blurred, 30.0) <= radius, name
        assert edge_read_radius(linear(photo(name)), 30.0) < EDGE_READ_MIN_RADIUS, name
    assert edge_read_radius(torch.full((3, 64, 64), 0.2, dtype=torch.float64), 30.0) == 0.0  # nothing to read


def test_the_edge_reading_is_edge_sharpness_taken_radius_by_radius(monkeypatch):
    # the reading grows its range filters step by step; at any level it must stop where edge_sharpness says
    camera = Camera(psf=LensPSF(5.0, blades=6, softening=0.4), noise=PoissonGaussian(2e-4, 2e-3))
    scene = SRGB.decode(photo("coffee", 128)) * 0.4
    scene[..., 20:22, 30:32] += 10.0  # a point light, whose disc is left out
    blurred = linear(quantize(SRGB.encode(
        camera.noise.sample(camera.linear_blur(scene), torch.Generator().manual_seed(0)).clamp(0, 1))))
    rho = {r: edge_sharpness(blurred, r) for r in np.arange(0.5, 12.0 + 1e-9, 0.5)}
    readings = set()
    for level in (0.6, 0.7, 0.8, 0.9, 1.0, 1.2):
        monkeypatch.setattr(hidd.blind.edge_bound, "EDGE_READ_LEVEL", level)
        expected = max([0.0] + [r for r in rho if all(0 < rho[s] <= level for s in rho if s <= r)])
        assert edge_read_radius(blurred, 12.0) == expected, level
        readings.add(expected)
    assert len(readings) >= 4  # the levels stop it at different windows


def test_where_everything_else_reads_in_focus_the_edges_blur_is_taken_half_trusted(monkeypatch):
    # a textureless photo hides its blur from the spectrum (OpenCV's orange), not from its edges
    in_focus = PSFEstimate(LensPSF(0.0), 1, False, 1e-6, 0.0, fit_ratio=2.0)
    monkeypatch.setattr(hidd.blind.defocus, "estimate_psf", lambda *args, **kwargs: in_focus)
    blurred = linear(Camera(psf=LensPSF(8.0, softening=0.5), noise=PoissonGaussian(1e-4, 1e-3)).render(
        photo("chelsea"), generator=torch.Generator().manual_seed(0)))
    assert estimate_defocus(blurred) is in_focus  # off by default
    estimate = estimate_defocus(blurred, edge_read_share=0.5)
    assert EDGE_READ_MIN_RADIUS <= estimate.lens.radius <= 8.0 and estimate.max_share == 0.5
    assert not estimate.softening_fitted  # its softening is set, not fitted: a white misfit does not drop it
    assert estimate_defocus(linear(photo("chelsea")), edge_read_share=0.5) is in_focus  # sharp: no reading
    # no sharp edge among its strongest, yet sharp: skimage's colour wheel reads 28 px, beyond what is taken
    assert estimate_defocus(linear(quantize(photo("colorwheel"))), edge_read_share=0.5) is in_focus
    with pytest.raises(ValueError, match="edge_read_share must be in"):
        estimate_defocus(blurred, edge_read_share=1.5)


def test_the_tiles_shared_blur_must_fit_the_photos_edges(monkeypatch):
    in_focus = PSFEstimate(LensPSF(0.0), 1, False, 1e-6, 0.0, fit_ratio=2.0)
    monkeypatch.setattr(hidd.blind.defocus, "estimate_psf", lambda *args, **kwargs: in_focus)
    monkeypatch.setattr(hidd.blind.defocus, "tile_radius_quantiles_batch",
                        lambda linear, q: np.array([[7.0, 10.0]] * len(linear)))
    monkeypatch.setattr(hidd.blind.defocus, "MAX_FIT_RATIO", math.inf)  # whatever the spectrum says
    sharp = linear(photo("astronaut"))
    blurred = linear(Camera(psf=LensPSF(7.0, softening=0.5), noise=PoissonGaussian(1e-4, 1e-3)).render(
        photo("astronaut"), generator=torch.Generator().manual_seed(0)))
    assert estimate_defocus(sharp, shared_quantile=0.25) is in_focus
    assert estimate_defocus(blurred, shared_quantile=0.25).lens.radius == pytest.approx(0.8 * 7.0)


def test_a_radius_at_the_top_of_the_search_is_flagged():
    y = Camera(psf=LensPSF(8.0)).render(photo("astronaut"))
    estimate = estimate_psf(linear(y), max_radius=8.0)
    assert estimate.at_bound and estimate.lens.radius == pytest.approx(8.0, abs=0.1)
    assert not estimate_psf(linear(y)).at_bound


def test_real_defocused_photo_with_coloured_noise_gets_a_radius_that_scales_with_it():
    # OpenCV's text_defocus (JPEG, real lens blur): a white noise floor read it as in focus
    image = torch.from_numpy(read_image(EXAMPLES / "real" / "text_defocus.png").pixels).permute(2, 0, 1).double()
    full = estimate_psf(SRGB.decode(image)).lens.radius
    half = estimate_psf(SRGB.decode(F.interpolate(image[None], scale_factor=0.5, mode="area")[0])).lens.radius
    assert full > 5.0
    assert half == pytest.approx(full / 2, rel=0.15)


@needs_benchmark
def test_blind_radius_on_the_public_benchmark():
    meta = json.loads((BENCHMARK / "meta.json").read_text())["images"]
    for name, info in meta.items():
        if not isinstance(info.get("radius"), (int, float)) or info["radius"] <= 0:
            continue
        tone = tone_curve(info.get("tone_curve", "none"))  # the sRGB-disk set blurs values as given
        y = torch.from_numpy(read_image(BENCHMARK / "blurred" / f"{name}.png").pixels).permute(2, 0, 1).double()
        assert estimate_psf(tone.decode(y)).lens.radius == pytest.approx(info["radius"], rel=0.15), name


def test_radius_map_separates_sharp_and_blurred_halves():
    x = SRGB.decode(photo("astronaut", 128).double())
    right = blur(x, LensPSF(5.0).kernels(1, torch.float64))
    y = torch.cat([x[..., :64], right[..., 64:]], dim=-1)
    radius_map = estimate_defocus_map(y[0], 0.0).radius
    assert radius_map.shape == (128, 128)
    assert radius_map[:, 88:].mean() > radius_map[:, :40].mean() + 2.5


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="no shipped checkpoint")
def test_noise_level_on_poisson_gaussian_noise_and_jpeg():
    """The noise level the default uses (the blind noise-level function, then re-measured from the misfit at
    σ 0.03) against the noise actually in the photo: its difference from the same camera's noise-free photo.
    The blind function alone reads JPEG'd noise 0.6–1.2× (JPEG wipes the noise of the flat patches it reads)."""
    torch.set_num_threads(2)
    from hidd.deblur import Deblurrer

    deblur = Deblurrer(load_prior(preset="fast"))
    for name, shot, read, quality in [("coffee", 2e-4, 2e-3, 90), ("astronaut", 4e-4, 1e-3, 85),
                                      ("rocket", 1e-4, 2e-3, 80)]:
        x = photo(name)
        camera = Camera(psf=LensPSF(3.0, softening=0.5), noise=PoissonGaussian(shot, read), jpeg_quality=quality)
        y = camera.render(x, generator=torch.Generator().manual_seed(0))
        clean = Camera(psf=camera.psf, jpeg_quality=quality).render(x)
        truth = (y - clean).double().square().mean().sqrt().item()
        nlf = estimate_nlf(y[0].double(), SRGB, estimate_psf(linear(y)).lens).level(y.double()).item()
        assert 0.5 * truth < nlf < 1.5 * truth, name
        assert deblur(y).noise_sigma.item() == pytest.approx(truth, rel=0.25), name


def test_white_noise_level_and_the_quantisation_floor():
    y = add_white_noise(blur(photo("coffee", 128), LensPSF(3.0).kernels()), 0.01, torch.Generator().manual_seed(0))
    none = tone_curve("none")
    assert estimate_nlf(y[0], none, LensPSF(3.0)).level(y).item() == pytest.approx(0.01, rel=0.15)
    clean = quantize(blur(photo("coffee", 64), LensPSF(3.0).kernels()))
    assert estimate_nlf(clean[0], none).level(clean).item() >= 1 / (255 * math.sqrt(12)) - 1e-12  # floored


def test_blind_fast_preset_is_the_cli_default_and_reports_the_radius(tiny_checkpoint, tmp_path):
    sharp = photo("chelsea", 128)
    blurred = Camera(psf=LensPSF(3.0), noise=PoissonGaussian(read=0.002)).render(
        sharp, generator=torch.Generator().manual_seed(0))
    write_image(tmp_path / "in" / "cat.png", blurred[0].permute(1, 2, 0).numpy())
    write_image(tmp_path / "sharp" / "cat.png", sharp[0].permute(1, 2, 0).numpy())
    write_image(tmp_path / "in" / "small.png", synthetic_photo(0, 32))
    write_image(tmp_path / "sharp" / "small.png", synthetic_photo(0, 32) * 0.9)
    reconstruct_main(["--input", str(tmp_path / "in"), "--target", str(tmp_path / "sharp"),
                      "--output", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint),
                      "--set", "sampler.num_steps=2", "--set", "sampler.prox_lambda_white=0",  # no restart,
                      "--set", "sampler.noisy_retry_lambda=0"])  # no second sampling; no --preset: fast
    header, *rows = [line.split(",") for line in (tmp_path / "out" / "metrics.csv").read_text().splitlines()]
    table = {row[0]: dict(zip(header, row)) for row in rows}
    assert float(table["cat"]["radius"]) == pytest.approx(3.0, rel=0.15)
    assert int(table["cat"]["nfe"]) == 2 and table["small"]["radius"] != ""
    assert read_image(tmp_path / "out" / "cat.png").pixels.shape == (128, 128, 3)


def _reconstruct_cat(checkpoint, tmp_path, size: int, *settings: str, noise: PoissonGaussian | None = None):
    """Chelsea (size²) through a 3 px lens (and `noise`), written to tmp_path/in and deblurred by hidd-reconstruct
    into tmp_path/out with these `--set` settings; (its metrics.csv row, the blurred photo)."""
    camera = Camera(psf=LensPSF(3.0), noise=noise or PoissonGaussian())
    blurred = camera.render(photo("chelsea", size), generator=torch.Generator().manual_seed(0))
    write_image(tmp_path / "in" / "cat.png", blurred[0].permute(1, 2, 0).numpy())
    reconstruct_main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                      "--checkpoint", str(checkpoint), *(arg for setting in settings for arg in ("--set", setting))])
    header, row = [line.split(",") for line in (tmp_path / "out" / "metrics.csv").read_text().splitlines()]
    return dict(zip(header, row)), blurred


def test_a_result_too_noisy_even_in_a_blend_leaves_the_photo_unchanged_and_says_so(tiny_checkpoint, tmp_path, capsys):
    row, _ = _reconstruct_cat(tiny_checkpoint, tmp_path, 128, "sampler.num_steps=2", "sampler.prox_lambda_white=0",
                              "sampler.max_noise_gain=0.001", noise=PoissonGaussian(read=0.002))
    assert float(row["radius"]) > 0 and float(row["share"]) == 0.0  # no blend is that clean: the photo itself
    assert (read_image(tmp_path / "out" / "cat.png").pixels == read_image(tmp_path / "in" / "cat.png").pixels).all()
    assert "cat.png: left unchanged; its deblurred result had" in capsys.readouterr().err


def test_a_partial_back_off_is_recorded_and_said(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import hidd.stages.select
    from hidd.no_harm import BackOff

    def half_way(y, result, tone, limit, in_focus=None, max_share=None, hedges=None, lenses=None,
                 ringing_share=1.0, photo_noise=None):  # only the ½ blend clean enough
        share = torch.full((len(y),), 0.5, dtype=torch.float64)
        unhedged = torch.ones_like(share)
        return BackOff(torch.lerp(y.to(result), result, 0.5), torch.full_like(share, 2.5), share, unhedged,
                       torch.full_like(share, float("nan")), torch.zeros(len(y), dtype=torch.bool))

    monkeypatch.setattr(hidd.stages.select, "back_off", half_way)
    row, _ = _reconstruct_cat(tiny_checkpoint, tmp_path, 64, "sampler.num_steps=2", "sampler.prox_lambda_white=0",
                              "sampler.noisy_retry_lambda=0")  # no second sampling (next test)
    assert float(row["share"]) == 0.5
    printed = capsys.readouterr()
    assert "cat.png: backed off to 50% of its deblurring (blended with the input); its deblurred result had 2.5×" \
        in printed.err
    assert any(line.startswith("cat ") and line.split()[4] == "0.5" for line in printed.out.splitlines())  # kept


def _grainy_then_clean(monkeypatch, misfit_correlation: float = float("nan"), grain_again: bool = False) -> list:
    """Replace the sampler by one whose first result is the photo under heavy grain and whose later ones are the
    photo brightened by 0.02 (or grainy again), and which records `misfit_correlation` as the data step's
    calibration would; returns the list of the settings it is called with."""
    import hidd.stages.sample
    from hidd.sampling.calibration import Calibration
    from hidd.sampling.pc import SampleResult

    calls = []

    def sample(sde, score_fn, cfg, *, y, operator, calibration=None, **kwargs):
        calls.append(cfg)
        measured = Calibration.blind(operator, cfg.prox_lambda) if calibration is None else calibration
        measured = dataclasses.replace(measured, misfit_correlation=torch.full_like(measured.misfit_correlation,
                                                                                    misfit_correlation))
        grainy = len(calls) == 1 or grain_again
        change = 0.3 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0)) if grainy else 0.02
        return SampleResult(x=(y + change).clamp(0, 1), nfe=cfg.num_steps, calibration=measured)

    monkeypatch.setattr(hidd.stages.sample, "sample_loop", sample)
    return calls


def test_a_result_too_noisy_is_sampled_again_trusting_the_prior_more(tiny_checkpoint, monkeypatch):
    from hidd.deblur import Deblurrer

    calls = _grainy_then_clean(monkeypatch)
    y = Camera(psf=LensPSF(3.0)).render(photo("chelsea", 64), generator=torch.Generator().manual_seed(0))
    result = Deblurrer(load_prior(tiny_checkpoint, preset="fast", overrides=["sampler.num_steps=3"]))(y)
    first, second = calls
    assert (second.prox_lambda, second.num_steps, second.noise_calibration) == (4 * first.prox_lambda, 8, 0.0)
    assert result.retried.tolist() == [True] and result.nfe == 3 + 8 and result.noise_gain[0] <= 2.0
    second = (y + 0.02).clamp(0, 1)  # the clean second result, hedged (its misfit unmeasured: correlated)
    assert result.share.tolist() == [0.9] and torch.allclose(result.images, y + 0.9 * (second - y), atol=1e-5)
    calls.clear()
    off = Deblurrer(load_prior(tiny_checkpoint, preset="fast", overrides=["sampler.num_steps=3",
                                                                          "sampler.noisy_retry_lambda=0"]))(y)
    assert len(calls) == 1 and off.retried.tolist() == [False] and off.nfe == 3 and off.noise_gain[0] > 2.0
    assert off.share[0] < 0.9  # blended with the photo instead, or the photo itself
    calls = _grainy_then_clean(monkeypatch, misfit_correlation=0.45)  # partly white: λ was lowered, not retried
    white = Deblurrer(load_prior(tiny_checkpoint, preset="fast", overrides=["sampler.num_steps=3"]))(y)
    assert len(calls) == 1 and white.retried.tolist() == [False] and white.noise_gain[0] > 2.0
    calls = _grainy_then_clean(monkeypatch, grain_again=True)  # as noisy again: the guard keeps as little of it
    again = Deblurrer(load_prior(tiny_checkpoint, preset="fast", overrides=["sampler.num_steps=3"]))(y)
    assert len(calls) == 2 and again.retried.tolist() == [False] and torch.equal(again.images, off.images)


def test_a_second_sampling_is_recorded_and_said(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    _grainy_then_clean(monkeypatch)
    row, _ = _reconstruct_cat(tiny_checkpoint, tmp_path, 64, "sampler.num_steps=3")
    assert row["nfe"] == "11" and float(row["share"]) == 0.9  # the second result, hedged (its misfit unmeasured)
    assert "cat.png: its first result was too noisy, so it was sampled again trusting the prior more " \
           "(sampler.noisy_retry_lambda), and that result kept; hedged to 90% in all, its misfit being correlated " \
           "(sampler.hedge_share)" in capsys.readouterr().err


def test_a_blind_result_is_hedged_by_its_calibration_misfit_recorded_and_not_said(tiny_checkpoint, tmp_path, capsys,
                                                                                   monkeypatch):
    import hidd.stages.select
    from conftest import make_tiny_checkpoint
    from hidd.deblur import Deblurrer
    from hidd.no_harm import hedge

    seen = []

    def recording_hedge(correlation, hedge_share):
        seen.append((correlation.clone(), hedge_share))
        return hedge(correlation, hedge_share)

    monkeypatch.setattr(hidd.stages.select, "hedge", recording_hedge)
    row, blurred = _reconstruct_cat(tiny_checkpoint, tmp_path, 64, "sampler.num_steps=4", "sampler.max_noise_gain=1000",
                                    "sampler.hedge_share=0.5", noise=PoissonGaussian(read=0.002))
    (correlation, hedge_share), = seen
    assert hedge_share == 0.5 and correlation.shape == (1,) and torch.isfinite(correlation).all()  # calibrated
    share = float(row["share"])
    assert 0.5 <= share <= 1 and share == pytest.approx(hedge(correlation, 0.5).item(), abs=1e-3)
    assert "note:" not in capsys.readouterr().err  # hedged, not backed off: nothing to say
    given = Deblurrer(load_prior(tiny_checkpoint, preset="fast", overrides=[
        "sampler.num_steps=4", "sampler.max_noise_gain=1000", "sampler.radius=3"]))
    result = given(blurred)
    assert result.share.tolist() == [1.0] and len(seen) == 1  # a given PSF is the user's: not hedged
    assert torch.isfinite(result.notch_excess).all()  # but its result is judged for ringing, at the given lens
    grey = Deblurrer(load_prior(make_tiny_checkpoint(tmp_path / "grey.pt", "model.channels=1"), preset="fast",
                                overrides=["sampler.num_steps=4", "sampler.max_noise_gain=1000"]))
    result = grey(torch.cat([blurred, blurred.flip(-1)]))  # two photos, seen as three channel images each
    correlation = torch.cat([seen[-2][0], seen[-1][0]])  # one hedge per photo, its worst channel's
    assert correlation.shape == (2,) and torch.allclose(result.hedge, hedge(correlation, 0.9))


def test_photos_read_in_focus_come_back_unmeasured_and_a_batch_of_them_unsampled(tiny_checkpoint):
    from hidd.deblur import Deblurrer

    deblur = Deblurrer(load_prior(tiny_checkpoint, preset="fast", overrides=["sampler.num_steps=2"]))
    sharp = quantize(photo("astronaut", 128))
    blurred = Camera(psf=LensPSF(3.0)).render(photo("chelsea", 128), generator=torch.Generator().manual_seed(0))
    result = deblur(torch.cat([sharp, sharp]))  # nothing to deblur: the sampler does not run
    assert result.nfe == 0 and result.in_focus.tolist() == [True, True] and result.share.tolist() == [0.0, 0.0]
    assert torch.equal(result.images, torch.cat([sharp, sharp])) and result.noise_gain.isnan().all()
    result = deblur(torch.cat([sharp, blurred]))  # one to deblur: the batch is sampled, the sharp photo kept
    assert result.nfe > 0 and result.in_focus.tolist() == [True, False] and result.radius[1] > 0
    assert torch.equal(result.images[0], sharp[0]) and result.share[0] == 0 and result.noise_gain[0].isnan()
    assert torch.isfinite(result.noise_gain[1])


def test_a_half_trusted_blur_is_kept_at_half_strength_and_said(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import hidd.measurement

    def edges_only(*args, **kwargs):  # as if only the photo's edges had seen its blur
        return PSFEstimate(LensPSF(3.0, softening=0.35), 1, False, 1e-6, 0.0, fit_ratio=2.0, max_share=0.5)

    monkeypatch.setattr(hidd.measurement, "estimate_defocus_batch",
                        lambda linear, **kw: [edges_only() for _ in linear])
    row, _ = _reconstruct_cat(tiny_checkpoint, tmp_path, 64, "sampler.num_steps=2", "sampler.prox_lambda_white=0",
                              "sampler.max_noise_gain=1000")
    assert float(row["share"]) == 0.45  # ½, and hedged by 0.9: the tiny model's misfit is correlated
    assert "cat.png: deblurred at 50% strength (blended with the input): its spectrum reads in focus and only its " \
           "edges show the blur (3.0 px), so at most 50% of its deblurring is kept (sampler.edge_read_share); hedged " \
           "to 45% in all, its misfit being correlated (sampler.hedge_share)" in capsys.readouterr().err


def test_a_result_that_rings_is_kept_at_the_ringing_share_and_said(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import hidd.no_harm

    measured = []

    def ringing(image, lens):  # as if the deblurred result piled power up at its blur's first notch
        measured.append(lens)
        return 2.0

    monkeypatch.setattr(hidd.no_harm, "notch_excess", ringing)
    row, _ = _reconstruct_cat(tiny_checkpoint, tmp_path, 64, "sampler.num_steps=2", "sampler.prox_lambda_white=0",
                              "sampler.max_noise_gain=1000", "sampler.noisy_retry_lambda=0")
    assert float(row["share"]) == 0.45 and measured and measured[0].radius > 0  # ½ of it, hedged by 0.9
    assert "cat.png: deblurred at 50% strength (blended with the input): its deblurred result rings (its power at " \
           "its blur's first OTF notch is 7.4× its spectrum's trend), so at most 50% of it is kept " \
           "(sampler.ringing_share); hedged to 45% in all" in capsys.readouterr().err
    row, _ = _reconstruct_cat(tiny_checkpoint, tmp_path / "off", 64, "sampler.num_steps=2",
                              "sampler.prox_lambda_white=0", "sampler.max_noise_gain=1000",
                              "sampler.noisy_retry_lambda=0", "sampler.ringing_share=1")
    assert float(row["share"]) == 0.9 and "rings" not in capsys.readouterr().err  # off: measured, not acted on


def test_the_edge_reading_and_the_hedge_are_refused_without_the_guard_and_out_of_range(tiny_checkpoint):
    from hidd.deblur import Deblurrer

    y = Camera(psf=LensPSF(3.0)).render(photo("chelsea", 64), generator=torch.Generator().manual_seed(0))
    for overrides, message in [(["max_noise_gain=0"], "edge_read_share keeps a share of a deblurring"),
                               (["max_noise_gain=0", "edge_read_share=0"], "hedge_share keeps a share of a deblurring"),
                               (["edge_read_share=1.5"],
                                "edge_read_share: 1.5 is not valid; it must be a number in [0, 1]"),
                               (["hedge_share=0"], "hedge_share: 0.0 is not valid; it must be a number in (0, 1]"),
                               (["hedge_share=1.1"], "hedge_share: 1.1 is not valid"),
                               (["ringing_share=0"], "ringing_share: 0.0 is not valid; it must be a number in (0, 1]"),
                               (["max_noise_gain=0", "edge_read_share=0", "hedge_share=1"],
                                "ringing_share keeps a share of a deblurring"),
                               (["shared_quantile=0.5"],
                                "shared_quantile: 0.5 is not valid; it must be a number in [0, 0.5)"),
                               (["noisy_retry_lambda=0.5"],
                                "noisy_retry_lambda: 0.5 is not valid; it must be 0 or a number > 1"),
                               (["noisy_retry_steps=0"], "noisy_retry_steps: 0 is not valid; it must be a number ≥ 1"),
                               (["max_noise_gain=0", "edge_read_share=0", "hedge_share=1", "ringing_share=1"],
                                "noisy_retry_lambda samples again what the no-harm guard finds too noisy")]:
        deblur = Deblurrer(load_prior(tiny_checkpoint, preset="fast", overrides=[
            "sampler.num_steps=2", *(f"sampler.{override}" for override in overrides)]))
        with pytest.raises(ValueError, match=re.escape(message)):
            deblur(y)
    deblur = Deblurrer(load_prior(tiny_checkpoint, preset="fast", overrides=[
        "sampler.num_steps=2", "sampler.max_noise_gain=0", "sampler.edge_read_share=0", "sampler.hedge_share=1",
        "sampler.ringing_share=1", "sampler.noisy_retry_lambda=0"]))
    result = deblur(y)  # the guard off, with the edge reading, the hedge, the ringing cap and the retry off too
    assert result.share is None and result.notch_excess is None


def test_a_refused_sampler_setting_is_a_usage_error_before_anything_is_written(tiny_checkpoint, tmp_path, capsys):
    write_image(tmp_path / "in" / "a.png", synthetic_photo(0, 32))
    write_image(tmp_path / "in" / "b.png", synthetic_photo(1, 32))
    with pytest.raises(SystemExit) as exit_status:
        reconstruct_main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--checkpoint",
                          str(tiny_checkpoint), "--set", "sampler.noisy_retry_lambda=0.5"])
    err = capsys.readouterr().err
    assert exit_status.value.code == 2 and err.count("\n") == 1
    assert "noisy_retry_lambda: 0.5 is not valid; it must be 0 or a number > 1" in err
    assert not (tmp_path / "out").exists()


def test_the_edge_reading_stays_within_what_the_image_and_the_search_resolve():
    # a small photo reads long (coffee at 16 px, blurred by 3 px, read 8 px: a PSF larger than the photo); the
    # colour wheel, with no edge to stop the reading, must not pass as a blur at the top of a lower max_radius
    small = linear(Camera(psf=LensPSF(3.0)).render(photo("coffee", 16)))
    assert edge_read_radius(small, 12.5) > 0.05 * 16 and estimate_defocus(small, edge_read_share=0.5).max_share == 1.0
    wheel = linear(quantize(photo("colorwheel")))
    assert estimate_defocus(wheel, max_radius=8.0, edge_read_share=0.5).lens.radius == 0.0


def test_a_grey_prior_takes_the_edge_reading_per_channel_and_keeps_the_smallest_share(tmp_path, monkeypatch):
    # a 1-channel prior sees a photo's colour channels as three images, each with its own estimate
    import hidd.measurement
    from conftest import make_tiny_checkpoint
    from hidd.deblur import Deblurrer

    calls = []

    def one_channel_edges_only(*args, **kwargs):  # the first channel read by its edges, the others blurred
        calls.append(1)
        share = 0.5 if len(calls) % 3 == 1 else 1.0
        return PSFEstimate(LensPSF(3.0), 1, False, 1e-6, 0.0, fit_ratio=0.5, max_share=share)

    monkeypatch.setattr(hidd.measurement, "estimate_defocus_batch",
                        lambda linear, **kw: [one_channel_edges_only() for _ in linear])
    deblur = Deblurrer(load_prior(make_tiny_checkpoint(tmp_path / "grey.pt", "model.channels=1"), preset="fast",
                                  overrides=["sampler.num_steps=2", "sampler.max_noise_gain=1000",
                                             "sampler.hedge_share=1"]))
    y = Camera(psf=LensPSF(3.0)).render(photo("chelsea", 64), generator=torch.Generator().manual_seed(0))
    result = deblur(y)
    assert len(calls) == 3 and result.max_share.tolist() == [0.5] and result.share.tolist() == [0.5]


def test_a_blur_the_spectrum_prefers_unclearly_is_taken_where_the_tiles_and_the_edges_confirm_it(monkeypatch):
    # a stripe texture blurred 8.2 px (plasma_Grey): the whole-photo fit preferred 8.0 px, but by a ratio of 0.79,
    # short of IN_FOCUS_MARGIN; its tiles' quartiles, 6.1 and 8.2, bracket that blur, and its edges allow it
    unclear = PSFEstimate(LensPSF(7.0, softening=0.5), 1, False, 1e-6, 0.0, fit_ratio=0.8)
    in_focus = PSFEstimate(LensPSF(0.0), 1, False, 1e-6, 0.0, fit_ratio=0.8)
    margins = []

    def fit(linear, *, max_radius, in_focus_margin=IN_FOCUS_MARGIN, pyramid=None):
        margins.append(in_focus_margin)
        return unclear if unclear.fit_ratio <= in_focus_margin else in_focus

    quartiles = [6.0, 9.0]
    monkeypatch.setattr(hidd.blind.defocus, "estimate_psf", fit)
    monkeypatch.setattr(hidd.blind.defocus, "tile_radius_quantiles_batch",
                        lambda linear, q: np.array([quartiles] * len(linear)))
    monkeypatch.setattr(hidd.blind.defocus, "MAX_FIT_RATIO", math.inf)
    blurred = linear(Camera(psf=LensPSF(7.0, softening=0.5), noise=PoissonGaussian(1e-4, 1e-3)).render(
        photo("astronaut"), generator=torch.Generator().manual_seed(0)))
    assert estimate_defocus(blurred) is in_focus and margins == [IN_FOCUS_MARGIN]  # the tiles not asked: alone
    assert estimate_defocus(blurred, shared_quantile=0.25) is unclear and margins[-1] == CORROBORATED_MARGIN
    assert estimate_defocus(linear(photo("astronaut")), shared_quantile=0.25) is in_focus  # sharp edges refuse it
    quartiles[:] = [7.5, 10.0]  # the tiles read more than it: their shared blur instead
    assert estimate_defocus(blurred, shared_quantile=0.25).lens.radius == pytest.approx(0.8 * 7.5)
    quartiles[:] = [0.0, 9.0]  # more than a quarter of the photo sharp: nothing to confirm it
    assert estimate_defocus(blurred, shared_quantile=0.25) is in_focus


def test_the_tiles_shared_blur_comes_before_the_edge_reading(monkeypatch):
    in_focus = PSFEstimate(LensPSF(0.0), 1, False, 1e-6, 0.0, fit_ratio=2.0)
    monkeypatch.setattr(hidd.blind.defocus, "estimate_psf", lambda *args, **kwargs: in_focus)
    monkeypatch.setattr(hidd.blind.defocus, "tile_radius_quantiles_batch",
                        lambda linear, q: np.array([[7.0, 10.0]] * len(linear)))
    monkeypatch.setattr(hidd.blind.defocus, "MAX_FIT_RATIO", math.inf)
    blurred = linear(Camera(psf=LensPSF(7.0, softening=0.5), noise=PoissonGaussian(1e-4, 1e-3)).render(
        photo("astronaut"), generator=torch.Generator().manual_seed(0)))
    shared = estimate_defocus(blurred, shared_quantile=0.25, edge_read_share=0.5)
    assert shared.lens.radius == pytest.approx(0.8 * 7.0) and shared.max_share == 1.0  # fully trusted


def _heldout_simulator():
    """scripts/make_heldout.py: a camera written apart from hidd.camera (white balance, RGGB mosaic, 4:2:0 JPEG)."""
    spec = importlib.util.spec_from_file_location("make_heldout_for_blind", SCRIPTS / "make_heldout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_blur_under_high_iso_noise_is_not_refused_for_the_noise_floors_slope(monkeypatch):
    # a low-contrast scene at high ISO: its fine band is noise, and demosaicing, white balance and 4:2:0 JPEG
    # make that floor fall much faster than f^−1. The blur only the 2× coarser scale sees fitted the
    # full-resolution spectrum 3–4× worse than "in focus" with a floor of slope ≤ 1, and was refused
    simulator = _heldout_simulator()
    settings = argparse.Namespace(high_iso=True, jpeg=(80, 93), tone="srgb", sharpen=0.0)
    sharp = photo("chelsea")[0].permute(1, 2, 0).double().numpy()
    sharp = sharp.mean() + 0.35 * (sharp - sharp.mean())  # a dull, low-contrast scene
    for seed in (0, 1):
        encoded, _ = simulator.render(sharp, np.random.default_rng(seed), 4.5, settings)
        blurred = SRGB.decode(torch.from_numpy(encoded / 255.0).permute(2, 0, 1))
        with monkeypatch.context() as shallow_floor:
            shallow_floor.setattr(hidd.blind.defocus, "FINE_BAND_NOISE_SLOPE", 1.0)
            assert estimate_defocus(blurred).lens.radius == 0.0, seed  # what the check did with the search's floor
        estimate = estimate_defocus(blurred)  # read 4.64 and 4.80 px (2026-11-27)
        assert estimate.lens.radius == pytest.approx(4.5, rel=0.15) and estimate.found_scale == 2, seed
