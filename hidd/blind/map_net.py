"""Learned blind defocus map: a small fully convolutional network reads each pixel's defocus radius and how sure
it is, from the photo as its file encodes it.

The network f maps a photo y (C, H, W) in [0, 1] to two numbers per pixel, a radius r̂ = softplus(a) (px) and a
Laplace scale b = softplus(s) + MIN_SCALE (px), trained on rendered scenes (hidd.camera.scenes) with the absolute
error of the radius plus the negative log-likelihood of the true radius r under Laplace(r̂, b) for the scale alone
(r̂ held fixed in it, so a large b early on does not slow the radius down),

    L = |r − r̂| + |r − sg(r̂)| / b + log b

(or, with training.quantile q, the pinball loss of the q-quantile in place of |r − r̂|: map_loss),

so b is the error it expects: large where the photo holds nothing to read (flat sky, a texture-less wall).
What it sees: y − ½ and y's local contrast, (y − μ) / √(v + ε²) with μ, v the mean and variance over
CONTRAST_WINDOW² px (ε = CONTRAST_FLOOR): an edge's sharpness is a ratio of slope to step, whatever its contrast;
with `bands` > 0 (model.bands) also the shape of y's local power spectrum in that many log-spaced bands
(hidd.blind.local_spectrum): where a region's power falls and dips tells its blur whatever its contrast.
The confidence is c = 1 / (1 + b) ∈ (0, 1]. Layout: a U-Net of four scales (1, 1/2, 1/4, 1/8; features
`features`), three dilated 3×3 convolutions (dilation 2, 4, 8) at 1/8 for a receptive field of about 200 px
(a 12 px blur spans 25), replicate padding, no normalisation (a photo's map depends on that photo alone, whatever
batch it comes in). The photo is padded (replicate) to a multiple of 8 and the map cropped back.

`DefocusMap.tiles` holds the map's mean over TILE px tiles at stride TILE/2 (hidd.blind.defocus_map), so that
scripts/bench_defocus_map.py's `reads_varying` reads this map as it reads the edge map.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hidd import checkpoint
from hidd.blind.defocus_map import MAX_MAP_RADIUS, TILE, DefocusMap, tile_means
from hidd.blind.local_spectrum import local_spectrum

MIN_SCALE = 0.05  # px: the least Laplace scale (keeps the likelihood finite on exact radii)
CONTRAST_WINDOW = 15  # px: the window of the local contrast the network sees
CONTRAST_FLOOR = 0.01  # ε: the local std below which contrast is not amplified (8-bit noise and rounding)
FEATURES = (24, 32, 48, 48)  # feature maps at scales 1, 1/2, 1/4, 1/8
KIND = "defocus_map"  # a checkpoint's "kind": what it holds
TRAINED_TONE = "srgb"  # the tone curve of the photos it is trained on (hidd.camera.draws.lens_camera's)
CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "defocus_map.pt"  # the shipped network


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation,
                                   padding_mode="replicate"), nn.ReLU(inplace=True))


class MapNet(nn.Module):
    """The radius-and-scale network of the module docstring."""

    def __init__(self, features=FEATURES, channels: int = 3, bands: int = 0):
        super().__init__()
        f0, f1, f2, f3 = features
        if not valid_bands(bands):
            raise ValueError(f"MapNet: bands must be 0 (none) or at least 2, got {bands}")
        self.channels = channels
        self.bands = bands  # bands of the local spectrum it sees (0: none)
        self.enc0 = nn.Sequential(_conv(2 * channels + bands, f0), _conv(f0, f0))
        self.enc1 = nn.Sequential(_conv(f0, f1, 2), _conv(f1, f1))
        self.enc2 = nn.Sequential(_conv(f1, f2, 2), _conv(f2, f2))
        self.enc3 = nn.Sequential(_conv(f2, f3, 2), _conv(f3, f3, 1, 2), _conv(f3, f3, 1, 4), _conv(f3, f3, 1, 8))
        self.dec2 = _conv(f3 + f2, f2)
        self.dec1 = _conv(f2 + f1, f1)
        self.dec0 = _conv(f1 + f0, f0)
        self.head = nn.Conv2d(f0, 2, 1)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Photos (B, C, H, W) in [0, 1] → radius (B, H, W) and Laplace scale (B, H, W), px."""
        if y.ndim != 4 or y.shape[1] != self.channels:
            raise ValueError(f"MapNet: expected photos (B, {self.channels}, H, W), got {tuple(y.shape)}")
        h, w = y.shape[-2:]
        seen = [y - 0.5, local_contrast(y)] + ([local_spectrum(y, self.bands)] if self.bands else [])
        x = F.pad(torch.cat(seen, 1), (0, -w % 8, 0, -h % 8), mode="replicate")
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([_up(e3, e2), e2], 1))
        d1 = self.dec1(torch.cat([_up(d2, e1), e1], 1))
        d0 = self.dec0(torch.cat([_up(d1, e0), e0], 1))
        out = self.head(d0)[..., :h, :w]
        return F.softplus(out[:, 0]), F.softplus(out[:, 1]) + MIN_SCALE


def valid_bands(bands) -> bool:
    """Whether `bands` is a valid model.bands: 0 (no local spectrum) or a count of at least 2 (a shape across bands)."""
    return isinstance(bands, int) and not isinstance(bands, bool) and (bands == 0 or bands >= 2)


def local_contrast(y: torch.Tensor) -> torch.Tensor:
    """(y − μ) / √(v + ε²) per channel, μ and v over CONTRAST_WINDOW² px (replicate-padded)."""
    pad = CONTRAST_WINDOW // 2
    padded = F.pad(y, (pad, pad, pad, pad), mode="replicate")
    mean = F.avg_pool2d(padded, CONTRAST_WINDOW, stride=1)
    var = (F.avg_pool2d(padded.square(), CONTRAST_WINDOW, stride=1) - mean.square()).clamp_min(0)
    return (y - mean) / (var + CONTRAST_FLOOR ** 2).sqrt()


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def laplace_nll(radius: torch.Tensor, scale: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """The mean negative log-likelihood |r − r̂| / b + log b (the constant log 2 dropped)."""
    return ((true - radius).abs() / scale + scale.log()).mean()


def map_loss(radius: torch.Tensor, scale: torch.Tensor, true: torch.Tensor,
             quantile: float = 0.5, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The training loss |r − r̂| + NLL(sg(r̂), b) (the module docstring), averaged over pixels. With quantile
    q ≠ ½ the absolute error becomes the pinball loss 2 max(q e, (q − 1) e), e = r − r̂ (equal to |e| at ½), whose
    minimiser is the q-quantile of the radii a photo allows: q < ½ reads an ambiguous region shorter. `weight`
    (broadcast to the radius; mean 1 keeps the scale) weights each pixel's radius term: a weight that depends only
    on what the network sees leaves each pixel's minimiser where it is and moves where it spends its capacity."""
    error = true - radius
    pinball = 2 * torch.maximum(quantile * error, (quantile - 1) * error)
    if weight is not None:
        pinball = pinball * weight
    return pinball.mean() + laplace_nll(radius.detach(), scale, true)


def confidence(scale: torch.Tensor) -> torch.Tensor:
    """c = 1 / (1 + b): 1 for an exact reading, ½ where the expected error is 1 px."""
    return 1.0 / (1.0 + scale)


def save_network(net: MapNet, path: str | Path, config: dict, **extra) -> None:
    """An exported network: its weights, the training config it came from (model.features) and `extra`."""
    checkpoint.save_atomic({"kind": KIND, "config": config, "model": {k: v.detach().cpu().clone()
                                                                      for k, v in net.state_dict().items()},
                            **extra}, path)


def load_network(path: str | Path = CHECKPOINT, device: torch.device | str | None = None) -> MapNet:
    """The network in a defocus-map checkpoint (weights-only load), in eval mode on `device` (default CPU); a
    missing, foreign or mismatched file is one line naming it (hidd.checkpoint.CheckpointError). Loaded once per
    file version and device (the weights are never changed after loading)."""
    path = Path(path)
    if not path.is_file():
        raise checkpoint.CheckpointError(f"{path}: defocus map checkpoint not found (train one with "
                                         "scripts/train_defocus_map.py, or use sampler.radius_map: edges)")
    return _load_network(str(path.resolve()), path.stat().st_mtime_ns, str(torch.device(device or "cpu")))


@functools.lru_cache(maxsize=4)
def _load_network(path: str, _mtime: int, device: str) -> MapNet:
    state = checkpoint.load(path)
    if state.get("kind") != KIND:
        raise checkpoint.CheckpointError(f"{path}: not a defocus map checkpoint (kind {state.get('kind')!r})")
    model = state["config"].get("model", {})
    features, bands = model.get("features", FEATURES), model.get("bands", 0)
    if not valid_bands(bands):
        raise checkpoint.CheckpointError(f"{path}: its model.bands {bands!r} is not 0 (none) or a count of at least 2")
    try:
        net = MapNet(tuple(int(f) for f in features), bands=bands)
    except (TypeError, ValueError):
        raise checkpoint.CheckpointError(f"{path}: its model.features {features!r} are not four sizes") from None
    checkpoint.load_weights_strict(net, state["model"], path)
    return net.eval().requires_grad_(False).to(device)


def learned_defocus_map(photo: torch.Tensor, net: MapNet, tile: int = TILE) -> DefocusMap:
    """The defocus map of one photo (C, H, W) of encoded values in [0, 1] (gray photos (H, W) or (1, H, W) are
    replicated to the network's channels), on the network's device and dtype."""
    photo = photo[None] if photo.ndim == 2 else photo
    if photo.ndim != 3:
        raise ValueError(f"learned_defocus_map: expected a photo (C, H, W), got {tuple(photo.shape)}")
    if photo.shape[0] == 1:
        photo = photo.expand(net.channels, -1, -1)
    if not bool(torch.isfinite(photo).all()):
        raise ValueError("learned_defocus_map: the photo has non-finite values")
    weight = next(net.parameters())
    with torch.no_grad():
        radius, scale = net(photo[None].to(weight))
    radius = radius[0].float().clamp(max=MAX_MAP_RADIUS).to(photo.device)  # the radii it was trained on
    conf = confidence(scale[0]).float().to(photo.device)
    return DefocusMap(radius, conf, tile_means(radius, tile))
