"""The shipped checkpoint loads strictly and is a real denoiser on a public photo it never saw."""
import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from hidd.metrics import denoising_psnr, psnr
from hidd.prior import DEFAULT_CHECKPOINT, load_prior

pytestmark = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="no shipped checkpoint")


def test_shipped_checkpoint_is_small_and_strict():
    assert DEFAULT_CHECKPOINT.stat().st_size <= 32 * 2**20
    prior = load_prior()  # strict load of the EMA weights into the config's model
    assert prior.config.model.channels == 3
    assert sum(p.numel() for p in prior.model.parameters()) <= 8_000_000


def test_shipped_checkpoint_denoises_a_public_photo():
    torch.set_num_threads(2)
    prior = load_prior()
    photo = resize(data.astronaut(), (128, 128), anti_aliasing=True).astype(np.float32)
    x = torch.from_numpy(photo).permute(2, 0, 1)[None]
    sigma = 0.05
    noisy = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    denoised = denoising_psnr(prior.model, x, [sigma], seed=0)[sigma]
    assert denoised > psnr(noisy[0].clamp(0, 1), x[0]) + 4.0
