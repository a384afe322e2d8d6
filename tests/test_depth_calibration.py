"""The depth-varying data step's noise level: measured as one PSF's is."""
from dataclasses import replace

import torch

from conftest import synthetic_photo
from hidd.camera import Camera
from hidd.camera.psf import LensPSF
from hidd.camera.tone import tone_curve
from hidd.config import SamplerConfig
from hidd.measurement import measurement_model, noise_model


def test_the_depth_step_reads_its_noise_in_the_band_beyond_the_blur_as_one_psf_does():
    """JPEG wipes noise out of flat patches and keeps it around edges: the depth step's noise level, like fast's, is
    the spectral band's beyond the main lobe of the blur (at the map's mean radius), not the flat patches' alone."""
    sharp = torch.from_numpy(synthetic_photo(4, 64)).permute(2, 0, 1)[None].float()
    radius_map = torch.linspace(2.0, 4.0, 64).repeat(64, 1)[None]
    camera = Camera(psf=LensPSF(1.0, softening=0.5), white_noise=0.004, jpeg_quality=75)
    y = camera.render(sharp, radius_map=radius_map[0], generator=torch.Generator().manual_seed(5))
    cfg = replace(SamplerConfig(), radius_map=True, softening=0.5)
    op = measurement_model(y, cfg, radius_map)
    tone = tone_curve(cfg.tone_curve)
    band = noise_model(y, cfg, tone, [LensPSF(float(radius_map.mean()), softening=0.5)])[1]
    flat = noise_model(y, cfg, tone, [None])[1]
    assert torch.allclose(op.noise_sigma, band)
    assert float(band[0]) > float(flat[0])
