"""hidd.blind.edge_bound in torch: float32 against the float64 reference, the lights' regions and discs against
scipy.ndimage, batches against single photos, the dtype and device kept."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data, transform

from hidd.blind import edge_bound
from hidd.blind.edge_bound import (MAX_EDGE_SHARPNESS, disc_dilation, edge_read_radius, edge_read_radius_batch,
                                   edge_sharpness, edge_sharpness_batch, small_regions)
from hidd.camera import Camera, LensPSF, PoissonGaussian, tone_curve

SRGB = tone_curve("srgb")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def photo(name: str, size: int = 160) -> torch.Tensor:
    """A skimage photo resized to size², (1, 3, size, size) in [0, 1]."""
    image = getattr(data, name)() / 255.0
    image = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image
    return torch.from_numpy(transform.resize(image, (size, size), anti_aliasing=True)).permute(2, 0, 1)[None].float()


@pytest.fixture(scope="module")
def photos():
    """Linear-light float64 photos (3, H, W): sharp, and blurred by a camera at 3 and 6 px."""
    shots = {}
    for seed, name in enumerate(("astronaut", "coffee", "camera")):
        shots[name] = SRGB.decode(photo(name)[0].double())
        for radius in (3.0, 6.0):
            camera = Camera(psf=LensPSF(radius, blades=7, softening=0.5), noise=PoissonGaussian(2e-4, 2e-3),
                            demosaic=True, jpeg_quality=85)
            y = camera.render(photo(name), generator=torch.Generator().manual_seed(seed))
            shots[f"{name} {radius}"] = SRGB.decode(y[0].double())
    return shots


def test_float32_reads_as_the_float64_reference(photos):
    verdicts = set()
    for name, linear in photos.items():
        for radius in (2.0, 4.0, 8.0):
            reference, single = edge_sharpness(linear, radius), edge_sharpness(linear.float(), radius)
            assert single == pytest.approx(reference, rel=0.02), (name, radius)
            assert (single <= MAX_EDGE_SHARPNESS) == (reference <= MAX_EDGE_SHARPNESS), (name, radius)
            verdicts.add(reference <= MAX_EDGE_SHARPNESS)
        assert edge_read_radius(linear.float(), 12.0) == edge_read_radius(linear, 12.0), name
    assert verdicts == {True, False}  # both sides of the bound are exercised


def test_a_batch_reads_as_its_photos_one_by_one(photos):
    batch = torch.stack(list(photos.values())).float()
    radii = [2.0, 4.0, 8.0, 4.0, 2.5, 6.0, 3.0, 8.0, 5.0][:batch.shape[0]]
    together = edge_sharpness_batch(batch, radii)
    assert together.tolist() == [edge_sharpness(image, r) for image, r in zip(batch, radii)]
    assert edge_read_radius_batch(batch, 12.0).tolist() == [edge_read_radius(image, 12.0) for image in batch]
    with pytest.raises(ValueError, match="radii for"):
        edge_sharpness_batch(batch, radii[:2])


@pytest.mark.parametrize("device", DEVICES)
def test_the_dtype_and_device_are_kept(photos, device):
    linear = photos["coffee 6.0"].to(device)
    for dtype in (torch.float32, torch.float64):
        images = linear.to(dtype)[None].repeat(2, 1, 1, 1)
        for out in (edge_sharpness_batch(images, [6.0, 3.0]), edge_read_radius_batch(images, 8.0)):
            assert out.dtype == dtype and out.device.type == device
    assert edge_sharpness_batch(linear.half()[None], [6.0]).dtype == torch.float32  # half precision works in float32


def reference_light_discs(bright: np.ndarray, span: float, reach: float) -> np.ndarray:
    """scipy.ndimage's reading: label, find_objects, isin, and the squared Euclidean distance within reach²."""
    out = np.zeros_like(bright)
    for i, mask in enumerate(bright):
        labels, _ = ndimage.label(mask)
        small = [k + 1 for k, box in enumerate(ndimage.find_objects(labels))
                 if box[0].stop - box[0].start <= span and box[1].stop - box[1].start <= span]
        lights = np.isin(labels, small)
        if lights.any():
            out[i] = np.rint(ndimage.distance_transform_edt(~lights) ** 2) <= reach ** 2
    return out


def serpentine(size: int) -> np.ndarray:
    """A one-pixel-wide snake filling a size² box row by row: one region whose path through it is about size²/2."""
    mask = np.zeros((size, size), dtype=bool)
    mask[::2] = True
    for row in range(1, size, 2):
        mask[row, -1 if row % 4 == 1 else 0] = True
    return mask


def test_the_light_regions_and_discs_match_ndimage():
    rng = np.random.default_rng(0)
    masks = np.zeros((3, 96, 120), dtype=bool)
    masks[0] = rng.random((96, 120)) > 0.93  # scattered specks, some joined
    masks[0, 40:43, 50:53] = True
    masks[1, 5:25, 5:25] = serpentine(20)  # a snake: long inside, but its box fits a span of 20
    masks[1, 50:90, 30:110] = True  # a large region
    masks[1, 30:46, 100:116] = serpentine(16).T[::-1]
    masks[0, -1, :3] = masks[1, 0, :3] = True  # a photo's last row does not join the next one's first
    masks[2, :, -1] = masks[2, 5:9, 0] = True  # nor a row's last pixel the next row's first
    masks[2, 10:12, 10:12] = masks[2, 12:14, 12:14] = True  # diagonal neighbours are two regions
    bright = torch.from_numpy(masks)
    for span, reach in ((20.0, 10.0), (19.0, 9.5), (6.0, 5.5), (200.0, 3.0)):
        expected = reference_light_discs(masks, span, reach)
        found = disc_dilation(small_regions(bright, span), reach).numpy()
        assert np.array_equal(found, expected), (span, reach, int((found != expected).sum()))
    assert small_regions(bright, 20.0)[1, 5:25, 5:25].any() and not small_regions(bright, 19.0)[1, 5:25, 5:25].any()
    assert not small_regions(torch.zeros(2, 20, 20, dtype=torch.bool), 5.0).any()


def test_ties_at_the_strong_range_cut_are_taken_in_raster_order_and_the_quantile_is_numpys():
    values = torch.tensor([[3.0, 1.0, 2.0, 2.0, 2.0, -math.inf], [5.0, 5.0, 5.0, 0.0, -math.inf, -math.inf]])
    chosen = edge_bound._largest(values, torch.tensor([3, 5]))
    assert chosen.tolist() == [[True, False, True, True, False, False], [True, True, True, True, False, False]]
    rng = np.random.default_rng(1)
    counts = torch.tensor([1, 2, 7, 150, 1000])
    rows = torch.full((5, 1200), -math.inf, dtype=torch.float64)
    for row, count in zip(rows, counts):
        row[torch.from_numpy(rng.permutation(1200)[:int(count)])] = torch.from_numpy(rng.random(int(count)))
    found = edge_bound._top_quantile(rows, counts, 0.995)
    for row, value in zip(rows, found):
        assert float(value) == pytest.approx(np.quantile(row[torch.isfinite(row)].numpy(), 0.995), rel=1e-12, abs=1e-15)


def test_a_light_disc_wider_than_the_image_covers_it_without_error():
    mask = torch.zeros(1, 24, 24, dtype=torch.bool)
    mask[0, 12, 12] = True
    assert disc_dilation(mask, 25.0).all()  # every pixel lies within 25 px of the light
    image = torch.full((24, 24), 0.1, dtype=torch.float64)
    image[12, 12] = 1.0  # a point light, judged at a radius larger than the image
    assert edge_sharpness(image, 25.0) >= 0
