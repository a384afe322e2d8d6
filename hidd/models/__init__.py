"""Score networks, built from the `model` config section."""
from __future__ import annotations

from hidd.models.ncsnpp import NCSNpp

MODELS = {"ncsnpp": NCSNpp}


def build_model(cfg):
    """The score network s_θ(x, σ) described by a full Config (model section + training size)."""
    m = cfg.model
    if m.name not in MODELS:
        raise ValueError(f"model.name: unknown model '{m.name}' (choose from {', '.join(MODELS)})")
    if m.channels not in (1, 3):
        raise ValueError(f"model.channels: expected 1 or 3, got {m.channels}")
    return MODELS[m.name](
        channels=m.channels, image_size=cfg.data.image_size, nf=m.nf, ch_mult=tuple(m.ch_mult),
        num_res_blocks=m.num_res_blocks, attn_resolutions=tuple(m.attn_resolutions), dropout=m.dropout,
        fir_kernel=tuple(m.fir_kernel), skip_rescale=m.skip_rescale, fourier_scale=m.fourier_scale,
        init_scale=m.init_scale,
    )


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
