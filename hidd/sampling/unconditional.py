"""Quick unconditional samples of a score network (TensorBoard grids during training)."""
from __future__ import annotations

import torch

from hidd.config import SamplerConfig
from hidd.sampling.pc import sample


@torch.no_grad()
def sample_grid(model, sde, shape, num_steps: int, seed: int, device) -> torch.Tensor:
    """Images (B, C, H, W) in [0, 1] from the reverse SDE alone: no corrector, no measurement.

    model(x, sigma) is the score network. Euler–Maruyama rather than reverse diffusion, because the
    grid uses far fewer steps than the SDE's `num_scales` levels (see ReverseDiffusionPredictor).
    """
    cfg = SamplerConfig(predictor="euler_maruyama", corrector="none", consistency="none", num_steps=num_steps,
                        alpha_after_predictor=0.0, minmax_normalize=False, carry_mean=False, denoise_final=True)
    generator = torch.Generator(device=device).manual_seed(seed)
    return sample(sde, model, cfg, shape=shape, generator=generator, device=device).x
