"""The noise estimates on the photos' device, in float32, batched (hidd.blind.noise, hidd.no_harm, hidd.colour): the
same decisions as the float64 reference, the same values batched as photo by photo, the work in the photos' dtype."""
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from conftest import synthetic_photo
from hidd.blind import noise
from hidd.blind.noise import (INTENSITY_BINS, MIN_PATCHES, PATCH, WEAK_FRACTION, estimate_nlf, estimate_nlfs,
                              weak_texture_stats)
from hidd.camera import Camera, LensPSF, tone_curve
from hidd.camera.noise import PoissonGaussian
from hidd.colour import colourless
from hidd.no_harm import back_off, flat_noise_level, flat_noise_levels

SRGB = tone_curve("srgb")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def skimage_photo(name: str, size: int = 128) -> torch.Tensor:
    """(1, 3, size, size) in [0, 1]: the middle of a bundled photo, area-downsampled by 2 (a gray one in 3 channels)."""
    image = torch.from_numpy(getattr(skimage.data, name)()).double() / 255
    image = image.permute(2, 0, 1) if image.ndim == 3 else image[None].expand(3, -1, -1)
    top, left = (image.shape[1] - 2 * size) // 2, (image.shape[2] - 2 * size) // 2
    return F.avg_pool2d(image[None, :, top:top + 2 * size, left:left + 2 * size], 2)


def camera_photos(names=("astronaut", "coffee", "camera", "chelsea"), size: int = 128) -> torch.Tensor:
    """Photos a camera took (a 2.5 px disk, Poisson–Gaussian noise, JPEG 85), (B, 3, H, W) float32 in [0, 1]."""
    camera = Camera(psf=LensPSF(2.5), noise=PoissonGaussian(2e-4, 2e-3), jpeg_quality=85)
    return torch.cat([camera.render(skimage_photo(name, size), generator=torch.Generator().manual_seed(i))
                      for i, name in enumerate(names)]).float()


def synthetic_photos(n: int, size: int = 96) -> torch.Tensor:
    """n synthetic scenes with sensor noise, (n, 3, size, size) float32, unclipped."""
    clean = torch.stack([torch.from_numpy(synthetic_photo(seed, size)).permute(2, 0, 1) for seed in range(n)])
    return clean + 0.01 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))


def exactly(a: torch.Tensor, b: torch.Tensor):
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def test_the_segment_helpers_reproduce_torch_quantile_and_the_lower_median_exactly():
    generator = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        groups = torch.randint(0, 6, (3, 500), generator=generator)  # 5: in no group
        groups[1, groups[1] == 2] = 3  # an empty group
        values = torch.rand(groups.shape, generator=generator, dtype=dtype) ** 3
        values[2, 7] = torch.nan
        rows, firsts, sizes = noise._grouped(values, groups, 5)
        quantiles = noise._segment_quantile(rows, firsts, sizes, WEAK_FRACTION)
        for b in range(3):
            for g in range(5):
                members = values[b][groups[b] == g]
                assert int(sizes[b, g]) == len(members)
                segment = rows[b, firsts[b, g]:firsts[b, g] + sizes[b, g]]
                if len(members):
                    exactly(segment.median(), members.median())
                    exactly(quantiles[b, g], torch.quantile(members, WEAK_FRACTION))  # NaN where it holds one


def _reference_bins(encoded: torch.Tensor):
    """The per-bin loop of the float64 reference (one photo (C, H, W)): torch.quantile and torch.median per bin."""
    variance = noise._plane_residual_variance(encoded).flatten()
    curvature = noise._plane_residual_variance(noise._smoothed(encoded)).flatten()
    means = noise._patches(encoded).mean(-1).flatten()
    rows = []
    for k in range(INTENSITY_BINS):
        low, high = k / INTENSITY_BINS, (k + 1) / INTENSITY_BINS
        members = (means >= low) & ((means < high) if k < INTENSITY_BINS - 1 else True)
        if members.sum() < MIN_PATCHES / WEAK_FRACTION:
            continue
        weak = curvature[members] <= torch.quantile(curvature[members], WEAK_FRACTION)
        rows.append((k, means[members][weak].mean(), variance[members][weak].median(), int(weak.sum())))
    return rows


def test_the_vectorised_bins_are_the_reference_loops_in_float64():
    photos = torch.cat([camera_photos(("coffee", "camera")).double(), synthetic_photos(1, 128).double()])
    centres, variances, counts = weak_texture_stats(photos)
    for b, photo in enumerate(photos):
        reference = _reference_bins(photo)
        assert [k for k, *_ in reference] == torch.nonzero(counts[b]).flatten().tolist()
        for k, centre, variance, count in reference:
            assert int(counts[b, k]) == count and torch.equal(variances[b, k], variance)
            assert centres[b, k].item() == pytest.approx(centre.item(), rel=1e-12)


def test_the_plane_residual_is_the_least_squares_one():
    patches = torch.rand(5, PATCH, PATCH, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grid = torch.arange(PATCH, dtype=torch.float64)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    design = torch.stack([torch.ones(PATCH * PATCH, dtype=torch.float64), yy.flatten(), xx.flatten()], 1)
    flat = patches.reshape(5, -1)
    fitted = flat @ torch.linalg.pinv(design).T @ design.T
    expected = (flat - fitted).square().sum(-1) / (PATCH * PATCH - 3)
    image = torch.cat(list(patches), dim=1)  # the patches side by side: one 8 × 40 image
    assert torch.allclose(noise._plane_residual_variance(image), expected, rtol=1e-12, atol=0)


def test_float32_reads_the_levels_and_makes_the_decisions_of_the_float64_reference():
    photos = camera_photos()
    lenses = [LensPSF(2.5), None, None, LensPSF(4.0)]
    single = estimate_nlfs(photos, SRGB, lenses).level(photos)
    double = estimate_nlfs(photos.double(), SRGB, lenses).level(photos.double())
    assert single.dtype == torch.float32 and torch.allclose(single.double(), double, rtol=0.02, atol=0)
    flat32, flat64 = flat_noise_levels(photos, SRGB), flat_noise_levels(photos.double(), SRGB)
    assert flat32.dtype == torch.float64 and torch.allclose(flat32, flat64, rtol=0.01, atol=0)
    gray = photos.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    rms = gray.square().mean(dim=(1, 2, 3), keepdim=True).sqrt()
    tints = [gray * (1 + share * flat64.float()[:, None, None, None] / rms * torch.tensor([1.0, 0.0, -1.0])[:, None,
                                                                                                           None])
             for share in (0.9, 1.5)]  # chroma ≈ 0.7 and 1.2 × the noise level: just gray, just colour
    for candidates, verdict in zip([photos, gray + 1e-3 * (photos - gray), *tints],
                                   [[False, False, True, False], [True] * 4, [True] * 4, [False] * 4]):
        verdict32, noise32 = colourless(candidates, SRGB)
        verdict64, noise64 = colourless(candidates.double(), SRGB)
        assert verdict32.tolist() == verdict64.tolist() == verdict  # "camera" is a gray photo: gray with its noise
        assert torch.allclose(noise32, noise64, rtol=0.01, atol=0)


def test_float32_backs_off_as_the_float64_reference_does():
    photos = camera_photos()
    clean = torch.cat([Camera(psf=LensPSF(2.5)).render(skimage_photo(name)) for name in ("astronaut", "coffee",
                                                                                          "camera", "chelsea")]).float()
    results = photos + torch.tensor([0.5, 1.8, 2.4, 12.0])[:, None, None, None] * (photos - clean)  # amplified noise
    kwargs = dict(in_focus=torch.tensor([False, False, False, True]), lenses=[(LensPSF(2.5),)] * 4,
                  ringing_share=0.5, max_share=torch.tensor([1.0, 1.0, 0.6, 1.0], dtype=torch.float64))
    single = back_off(photos, results, SRGB, 2.0, **kwargs)
    double = back_off(photos.double(), results.double(), SRGB, 2.0, **kwargs)
    assert single.share.tolist() == double.share.tolist() and torch.equal(single.rang, double.rang)
    assert torch.allclose(single.noise_gain, double.noise_gain, rtol=0.01, equal_nan=True)
    assert single.share.tolist() == [1.0, 0.25, 0.25, 0.0]  # clean; the largest clean blend (under its cap); in focus
    assert single.images.dtype == torch.float32


def test_a_batch_reads_each_photo_as_it_reads_it_alone_whatever_else_is_in_it():
    photos = torch.cat([synthetic_photos(3), camera_photos(("coffee",), 96)])
    lenses = [LensPSF(3.0), LensPSF(2.5), None, LensPSF(2.5)]
    batched = estimate_nlfs(photos, SRGB, lenses)
    for i, photo in enumerate(photos):
        alone = estimate_nlf(photo, SRGB, lenses[i])
        for part in ("shot", "read", "floor"):
            assert torch.equal(getattr(batched, part)[i:i + 1], getattr(alone, part))
    levels = flat_noise_levels(photos, SRGB)
    assert levels.tolist() == [flat_noise_level(photo, SRGB) for photo in photos]
    assert torch.equal(flat_noise_levels(photos.flip(0), SRGB), levels.flip(0))
    assert torch.equal(flat_noise_levels(torch.cat([photos[:1], photos[2:]]), SRGB), levels[[0, 2, 3]])
    results = photos + torch.tensor([0.3, 0.9, 1.4, 2.0])[:, None, None, None] * (photos - photos.mean())
    together = back_off(photos, results, SRGB, 1.2)
    for i in range(len(photos)):
        one = back_off(photos[i:i + 1], results[i:i + 1], SRGB, 1.2)
        assert one.share.item() == together.share[i].item() and one.noise_gain.item() == together.noise_gain[i].item()


@pytest.mark.parametrize("device", DEVICES)
def test_the_work_stays_in_float32_on_the_photos_device(device):
    photos = synthetic_photos(2, 64).to(device)
    assert noise._plane_residual_variance(photos).dtype == torch.float32
    assert noise._smoothed(photos).dtype == torch.float32
    for dtype in (torch.float32, torch.bfloat16):
        stats = weak_texture_stats(photos.to(dtype))
        assert [s.device.type for s in stats] == [device] * 3 and stats[0].dtype == stats[1].dtype == torch.float32
    assert weak_texture_stats(photos.double())[1].dtype == torch.float64
    nlf = estimate_nlfs(photos, SRGB, [LensPSF(2.5), None])
    assert nlf.shot.device.type == device and nlf.shot.dtype == torch.float64
    assert flat_noise_levels(photos, SRGB).device.type == device
