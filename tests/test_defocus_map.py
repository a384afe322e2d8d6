"""The blind defocus map (hidd.blind.defocus_map): sharp reads sharp, a defocused part reads its blur."""
import pytest
import torch
from skimage import data, transform

from conftest import load_script
from hidd.blind.defocus_map import FOCUS_RADIUS, MAX_MAP_RADIUS, edge_ceiling, estimate_defocus_map
from hidd.camera.optics import blur
from hidd.camera.psf import LensPSF

NOISE = 0.002  # linear-light std of the noise added


@pytest.fixture(scope="module")
def scene():
    """A sharp grey scene (1, 192, 192) in linear light, with a little noise."""
    image = transform.resize(data.camera(), (192, 192), anti_aliasing=True)
    linear = torch.from_numpy(image).double()[None] ** 2.2
    return linear + NOISE * torch.randn(linear.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_a_sharp_photo_reads_in_focus_everywhere(scene):
    found = estimate_defocus_map(scene, NOISE)
    assert bool(found.in_focus.all()), float(found.radius.max())


def test_a_defocused_half_reads_its_blur_and_the_sharp_half_stays_in_focus(scene):
    blurred = blur(scene[None], LensPSF(6.0).kernels(1, torch.float64)[None])[0]
    half = scene.clone()
    half[..., 64:] = blurred[..., 64:]  # the right two thirds 6 px out of focus
    found = estimate_defocus_map(half, NOISE)
    assert float(found.radius[:, 150:].median()) == pytest.approx(6.0, rel=0.35)
    assert bool(found.in_focus[:, :24].all())
    assert load_script("bench_defocus_map").reads_varying(found)


def test_a_flat_photo_says_nothing_and_reads_in_focus():
    flat = torch.full((1, 128, 128), 0.3, dtype=torch.float64)
    flat += NOISE * torch.randn(flat.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    found = estimate_defocus_map(flat, NOISE)
    assert bool(found.in_focus.all()) and float(found.confidence.max()) == 0.0
    assert not load_script("bench_defocus_map").reads_varying(found)


def test_the_edge_ceiling_holds_a_sharp_part_in_focus_and_allows_a_defocused_parts_blur(scene):
    blurred = blur(scene[None], LensPSF(6.0).kernels(1, torch.float64)[None])[0]
    half = scene.clone()
    half[..., 64:] = blurred[..., 64:]
    ceiling = edge_ceiling(half, NOISE)
    assert ceiling.shape == (192, 192) and ceiling.dtype == torch.float32
    assert float(ceiling[:, :24].max()) < FOCUS_RADIUS  # the sharp third's edges allow no defocus
    assert float(ceiling[:, 96:160].median()) >= 4.0  # the defocused part's allow its blur (6 px, read short)
    flat = torch.full((1, 128, 128), 0.3, dtype=torch.float64)
    assert bool((edge_ceiling(flat, NOISE) == MAX_MAP_RADIUS).all())  # no edge: nothing bounds the blur
    with pytest.raises(ValueError, match="edge_ceiling: the noise std"):
        edge_ceiling(half, float("nan"))


def test_a_maps_scale_is_read_from_the_photos_tile_spectra(scene):
    from hidd.blind.radius_map import map_scale

    blurred = blur(scene[None], LensPSF(5.0).kernels(1, torch.float64)[None])[0]  # 5 px everywhere
    half_read = torch.full((192, 192), 2.5)  # a map of the right shape read at half the blur
    assert map_scale(half_read, blurred) == pytest.approx(2.0, rel=0.25)
    assert map_scale(torch.zeros(192, 192), blurred) == 1.0  # a map that reads no blur says nothing to scale
    assert map_scale(half_read, scene) == 1.0  # nor does a sharp photo, whose tiles read in focus
    with pytest.raises(ValueError, match="map_scale: a map of shape"):
        map_scale(half_read[:100], scene)


def test_a_bad_noise_level_is_refused(scene):
    with pytest.raises(ValueError, match="noise std"):
        estimate_defocus_map(scene, float("nan"))
