"""Blind defocus estimation (radius, radius map, noise level) and the blind deblurring path end to end."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data
from skimage.transform import resize

from conftest import synthetic_photo
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.degrade import add_noise, blur, defocus, quantize
from hidd.imageio import read_image, write_image
from hidd.measurement import estimate_noise_sigma
from hidd.metrics import psnr
from hidd.operators import make_psf
from hidd.prior import DEFAULT_CHECKPOINT, load_prior
from hidd.radius import estimate_radius, estimate_radius_map

BENCHMARK = Path(__file__).resolve().parent.parent / "data" / "benchmark"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
needs_benchmark = pytest.mark.skipif(not (BENCHMARK / "meta.json").is_file(),
                                     reason="no data/benchmark (run scripts/make_benchmark.py)")


def photo(name: str, size: int = 256) -> torch.Tensor:
    """A bundled skimage photo, centre square resized to size², as (1, C, size, size) in [0, 1]."""
    image = getattr(data, name)() / 255.0
    image = image[..., None] if image.ndim == 2 else image
    h, w = image.shape[:2]
    side = min(h, w)
    square = image[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2]
    return torch.from_numpy(resize(square, (size, size), anti_aliasing=True)).permute(2, 0, 1)[None].float()


@pytest.mark.parametrize("radius", [1.5, 2.7, 4.0, 5.5, 8.0])
def test_blind_radius_of_defocused_photos(radius):
    for seed, name in enumerate(("astronaut", "coffee")):
        y = defocus(photo(name), radius, noise_sigma=0.005, bits=8, generator=torch.Generator().manual_seed(seed))
        assert estimate_radius(y[0]) == pytest.approx(radius, abs=0.5)


@pytest.mark.parametrize("shape,radius", [("gaussian", 2.0), ("polygon", 4.0)])
def test_blind_size_of_other_psf_families(shape, radius):
    x = photo("astronaut")
    y = quantize(add_noise(blur(x, make_psf(shape, radius)), 0.005, torch.Generator().manual_seed(0)))
    assert estimate_radius(y[0], psf_shape=shape) == pytest.approx(radius, abs=0.5)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "camera", "rocket"])
def test_sharp_photos_read_in_focus(name):
    # rocket's spectrum fits a 2.5 px blur over a coloured noise floor slightly better than no blur:
    # only a clear win (IN_FOCUS_MARGIN) counts as defocus
    assert estimate_radius(photo(name)[0]) == 0.0


def test_real_defocused_photo_with_coloured_noise_gets_a_radius_that_scales_with_it():
    # OpenCV's text_defocus (JPEG, real lens blur): a white noise floor read it as in focus
    image = torch.from_numpy(read_image(EXAMPLES / "real" / "text_defocus.png").pixels).permute(2, 0, 1)
    full = estimate_radius(image)
    half = estimate_radius(F.interpolate(image[None], scale_factor=0.5, mode="area")[0])
    assert full > 5.0
    assert half == pytest.approx(full / 2, abs=0.5)


@needs_benchmark
def test_blind_radius_on_the_public_benchmark():
    meta = json.loads((BENCHMARK / "meta.json").read_text())["images"]
    uniform = {name: info["radius"] for name, info in meta.items() if isinstance(info["radius"], (int, float))}
    errors = []
    for name, radius in uniform.items():
        y = torch.from_numpy(read_image(BENCHMARK / "blurred" / f"{name}.png").pixels).permute(2, 0, 1)
        errors.append(abs(estimate_radius(y) - radius))
    assert len(errors) >= 3 and max(errors) <= 0.5 and np.mean(errors) < 0.1


def test_radius_map_separates_sharp_and_blurred_halves():
    x = photo("astronaut", 128)
    right = blur(x, make_psf("disk", 5.0))
    y = quantize(add_noise(torch.cat([x[..., :64], right[..., 64:]], dim=-1), 0.005,
                           torch.Generator().manual_seed(0)))
    radius_map = estimate_radius_map(y[0])
    assert radius_map.shape == (128, 128)
    assert radius_map[:, 88:].mean() > radius_map[:, :40].mean() + 2.5


def test_noise_level_estimate():
    y = add_noise(blur(photo("coffee", 128), make_psf("disk", 3.0)), 0.01, torch.Generator().manual_seed(0))
    assert estimate_noise_sigma(y).item() == pytest.approx(0.01, rel=0.15)
    assert estimate_noise_sigma(blur(photo("coffee", 64), make_psf("disk", 3.0))).item() > 0  # floored


def test_blind_fast_preset_is_the_cli_default_and_reports_the_radius(tiny_checkpoint, tmp_path):
    sharp = photo("chelsea", 128)[0].permute(1, 2, 0).numpy()
    blurred = defocus(photo("chelsea", 128), 3.0, noise_sigma=0.005, generator=torch.Generator().manual_seed(0))
    write_image(tmp_path / "in" / "cat.png", blurred[0].permute(1, 2, 0).numpy())
    write_image(tmp_path / "sharp" / "cat.png", sharp)
    write_image(tmp_path / "in" / "small.png", synthetic_photo(0, 32))
    write_image(tmp_path / "sharp" / "small.png", synthetic_photo(0, 32) * 0.9)
    reconstruct_main(["--input", str(tmp_path / "in"), "--target", str(tmp_path / "sharp"),
                      "--output", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint),
                      "--set", "sampler.num_steps=2"])  # no --preset: the blind fast sampler
    header, *rows = [line.split(",") for line in (tmp_path / "out" / "metrics.csv").read_text().splitlines()]
    table = {row[0]: dict(zip(header, row)) for row in rows}
    assert float(table["cat"]["radius"]) == pytest.approx(3.0, abs=0.5)
    assert int(table["cat"]["nfe"]) == 2 and table["small"]["radius"] != ""
    assert read_image(tmp_path / "out" / "cat.png").pixels.shape == (128, 128, 3)


@needs_benchmark
@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="no shipped checkpoint")
def test_depth_varying_pair_blind_map_and_deblurring():
    torch.set_num_threads(2)
    y = read_image(BENCHMARK / "blurred" / "motorcycle_depth.png").pixels
    x = read_image(BENCHMARK / "sharp" / "motorcycle_depth.png").pixels
    true_map = np.load(BENCHMARK / "radius_maps" / "motorcycle_depth.npy")
    y_tensor = torch.from_numpy(y).permute(2, 0, 1)[None]
    estimated = estimate_radius_map(y_tensor[0]).numpy()
    assert np.corrcoef(estimated.ravel(), true_map.ravel())[0, 1] > 0.6
    from hidd.deblur import Deblurrer

    prior = load_prior(preset="fast", overrides=["sampler.radius_map=true", "sampler.consistency=gradient",
                                                 "sampler.num_steps=4"])
    out = Deblurrer(prior)(y_tensor)
    assert psnr(out.images[0], torch.from_numpy(x).permute(2, 0, 1)) > psnr(y, x) + 0.1
