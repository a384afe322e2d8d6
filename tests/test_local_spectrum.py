"""The dense local spectrum (hidd.blind.local_spectrum) and the map network that reads it (model.bands)."""
import pytest
import torch

from hidd.blind.local_spectrum import band_centres, local_spectrum
from hidd.blind.map_net import MapNet, learned_defocus_map, load_network, save_network
from hidd.camera.optics import blur
from hidd.camera.psf import LensPSF
from hidd.checkpoint import CheckpointError
from hidd.config import ConfigError
from hidd.map_train import load_map_config

TINY = (4, 4, 6, 6)


def _noise(size: int = 96, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _disk(x: torch.Tensor, radius: float) -> torch.Tensor:
    return blur(x, LensPSF(radius).kernels(3)[None].to(x))


def test_the_spectrum_falls_where_the_disk_puts_its_first_notch():
    x = _noise()
    inner = (..., slice(24, -24), slice(24, -24))
    shapes = {r: local_spectrum(x if r == 0 else _disk(x, r), 8)[inner].mean(dim=(0, 2, 3)) for r in (0, 2, 4, 8)}
    assert shapes[0].shape == (8,) and bool((shapes[0].diff() > 0).all())  # white noise: power grows with band width
    # the first notch 0.61 / r: above it the blurred spectra fall, each from a lower band than the one before
    peaks = {r: int(shapes[r].argmax()) for r in (2, 4, 8)}
    assert peaks[2] > peaks[4] > peaks[8] == 0, peaks
    assert float(shapes[2][-1]) < float(shapes[0][-1]) - 2
    centres = band_centres(8)
    assert float(centres[0]) == pytest.approx(0.04) and float(centres[-1]) == pytest.approx(0.4)


def test_it_is_blind_to_contrast_and_zero_on_a_flat_photo_and_refuses_bad_input():
    x = _disk(_noise(64, 1), 2.0)
    brighter = local_spectrum(0.8 * x + 0.1, 6)
    assert torch.allclose(local_spectrum(x, 6), brighter, atol=0.05)
    assert float(local_spectrum(torch.full((2, 3, 40, 40), 0.5), 6).abs().max()) < 1e-5
    assert local_spectrum(torch.rand(1, 1, 9, 13), 4).shape == (1, 4, 9, 13)  # smaller than the padding
    with pytest.raises(ValueError, match="at least 2 bands"):
        local_spectrum(x, 1)
    with pytest.raises(ValueError, match=r"expected photos \(B, C, H, W\)"):
        local_spectrum(x[0], 4)


def test_a_banded_network_round_trips_its_bands_and_a_bad_count_is_refused(tmp_path):
    torch.manual_seed(3)
    net = MapNet(TINY, bands=4).eval()
    assert net.enc0[0][0].in_channels == 6 + 4
    path = tmp_path / "banded.pt"
    save_network(net, path, {"model": {"features": list(TINY), "bands": 4}})
    photo = _noise(40, 2)[0].float()
    assert torch.equal(learned_defocus_map(photo, load_network(path)).radius, learned_defocus_map(photo, net).radius)
    save_network(net, tmp_path / "unbanded.pt", {"model": {"features": list(TINY)}})  # bands missing: 0
    with pytest.raises(CheckpointError, match="unbanded.pt: does not match the model config"):
        load_network(tmp_path / "unbanded.pt")
    for bands in (1, 2.5):
        save_network(net, tmp_path / "odd.pt", {"model": {"features": list(TINY), "bands": bands}})
        with pytest.raises(CheckpointError, match=f"odd.pt: its model.bands {bands} is not 0 .none. or a count"):
            load_network(tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="bands must be 0"):
        MapNet(TINY, bands=1)
    with pytest.raises(ConfigError, match="model.bands: 1 is not valid; 0 .none. or a count of at least 2"):
        load_map_config("defocus_map", ["model.bands=1"])
