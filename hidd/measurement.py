"""The measurement model of each input: its camera's tone curve, its blur (given, or estimated blindly) and
its noise-level function (given as one white level, or estimated), as a hidd.operators.BlurOperator."""
from __future__ import annotations

import torch

from hidd.blind.defocus import estimate_defocus_batch
from hidd.blind.noise import estimate_nlfs
from hidd.blind.spectrum import working
from hidd.blind.defocus_map import grey_noise_std
from hidd.blind.map_estimators import map_estimator
from hidd.camera.noise import NoiseLevelFunction
from hidd.camera.psf import PSF_FAMILIES, LensPSF
from hidd.camera.tone import tone_curve
from hidd.camera.optics import Layers
from hidd.operators import BlurOperator, DepthVaryingBlur, LayeredBlur, UniformBlur, lens_psfs



def known_lens(cfg) -> LensPSF | None:
    """The lens PSF the config gives (sampler.radius > 0), or None when it is to be estimated."""
    if cfg.radius <= 0:
        return None
    if cfg.psf not in PSF_FAMILIES:
        raise ValueError(f"sampler.psf: unknown PSF '{cfg.psf}' (choose from {', '.join(PSF_FAMILIES)})")
    if cfg.psf == "gaussian":
        return LensPSF(0.0, softening=cfg.radius)
    return LensPSF(cfg.radius, blades=cfg.blades if cfg.psf == "polygon" else 0, softening=cfg.softening)


def noise_model(y: torch.Tensor, cfg, tone, lenses: list[LensPSF | None]) -> tuple[NoiseLevelFunction, torch.Tensor]:
    """The noise-level function of images y (B, C, H, W) and its RMS level (B,), both on the device of y: white at
    cfg.noise_sigma when that is given, else estimated for the batch on y's device (hidd.blind.noise, each image on
    its own), floored at cfg.noise_sigma_min."""
    b = y.shape[0]
    if cfg.noise_sigma > 0:
        nlf = NoiseLevelFunction.white(tone, torch.full((b,), cfg.noise_sigma, dtype=torch.float64, device=y.device))
        return nlf, nlf.level(working(y)).double()
    nlf = estimate_nlfs(y.detach(), tone, lenses)
    level = nlf.level(working(y)).double()
    if cfg.noise_sigma_min > 0:
        gain = (cfg.noise_sigma_min / level).clamp_min(1.0)  # raise the whole function to the floor
        nlf = NoiseLevelFunction(tone, nlf.shot * gain**2, nlf.read * gain, nlf.floor * gain)
        level = level * gain
    return nlf, level


def measurement_model(y: torch.Tensor, cfg, radius_map: torch.Tensor | None = None,
                      layers: list[Layers] | None = None) -> BlurOperator:
    """Blur operator of measurements y (B, C, H, W) in [0, 1] under a SamplerConfig.

    radius_map: a known per-pixel disk radius (B, H, W) (e.g. from depth, or a benchmark's ground truth):
    spatially varying blur without estimation; it needs cfg.radius_map. layers: instead, each image's known layered
    scene (hidd.camera.Layers, coverages (L, H, W) far to near): the camera's layered blur with occlusion
    (hidd.operators.LayeredBlur), its pinhole radius map standing for the map where a map is read.
    cfg.radius > 0 is taken as known (one PSF for every image); otherwise each image's lens PSF (radius and
    softening) is estimated from its spectrum in linear light (hidd.blind.defocus: the whole-photo fit, with
    cfg.shared_quantile, where that reads in focus, a blur it preferred unclearly that the tiles confirm or else the
    blur most of its tiles share, and with cfg.edge_read_share
    the blur its edges allow where even that does), or, with cfg.radius_map,
    a per-pixel defocus map (spatially varying blur), read from each photo on its own by the estimator it names
    (hidd.blind.map_estimators: edges, or learned from the encoded photo), each photo's PSF shape its whole-photo
    fit's and its noise level read as one PSF's is (hidd.blind.noise: the flat patches, raised to the spectral band
    beyond the main lobe of that shape at the map's mean radius).
    cfg.noise_sigma > 0 is taken as known; otherwise each
    image's noise-level function is estimated. The operator's `noise_sigma` is each image's RMS noise level.
    The estimates run on y's device, the batch's same-size photos at once, each photo judged on its own.
    """
    tone = tone_curve(cfg.tone_curve, cfg.gamma)
    linear = tone.decode(y.detach())  # the estimates work on y's device, in float32 (float64 for float64 photos)
    if radius_map is not None and layers is not None:
        raise ValueError("give a known radius map or known layers, not both")
    if radius_map is not None and not cfg.radius_map:
        raise ValueError("a known radius map needs sampler.radius_map (true, edges or learned)")
    if layers is not None and not cfg.radius_map:
        raise ValueError("known layers need sampler.radius_map (true, edges or learned)")
    if layers is not None:
        if len(layers) != y.shape[0] or any(s.alphas.ndim != 3 or s.alphas.shape[-2:] != y.shape[-2:] for s in layers):
            raise ValueError(f"known layers: one (L, H, W) coverage stack per image of {tuple(y.shape)}, got "
                             f"{[tuple(s.alphas.shape) for s in layers]}")
        radius_map = torch.stack([scene.radius_map() for scene in layers])
    if cfg.radius_map and (cfg.radius <= 0 or radius_map is not None):
        if cfg.psf == "gaussian":
            raise ValueError("sampler.radius_map: spatially varying blur supports psf disk or polygon, not gaussian")
        if radius_map is None:  # each photo's blind defocus map, on its own (hidd.blind.map_estimators)
            estimator = map_estimator(cfg.radius_map, cfg.map_network)
            grey_noise = grey_noise_std(noise_model(y, cfg, tone, [None] * y.shape[0])[0], y)  # the edge tests
            radius_map = torch.stack([estimator(photo, image, float(std), cfg.radius_tile).radius
                                      for photo, image, std in zip(y.detach(), linear, grey_noise)])
        maps = radius_map.to(y)
        if maps.shape != (y.shape[0], *y.shape[-2:]):
            raise ValueError(f"radius map of shape {tuple(maps.shape)} for images {tuple(y.shape)}")
        if cfg.psf == "disk" and cfg.softening <= 0:  # each photo's lens shape from its whole-photo fit
            shapes = [e.lens.with_radius(1.0) for e in estimate_defocus_batch(linear, max_radius=cfg.max_radius)]
        else:
            shapes = [LensPSF(1.0, blades=cfg.blades if cfg.psf == "polygon" else 0, softening=cfg.softening)] * len(y)
        # the noise the data step amplifies, as for one PSF: the band beyond the main lobe of the blur at the map's
        # mean radius (JPEG wipes noise out of flat patches, not around edges: hidd.blind.noise)
        bands = [shape.with_radius(float(m.mean())) for shape, m in zip(shapes, maps)]
        noise, level = noise_model(y, cfg, tone, [lens if lens.radius > 0 or lens.softening > 0 else None
                                                  for lens in bands])
        if layers is not None:
            return LayeredBlur([Layers(scene.alphas.to(y), scene.radii) for scene in layers], noise, level,
                               lens=shapes, boundary=cfg.boundary)
        return DepthVaryingBlur(maps[:, None], noise, level, lens=shapes, boundary=cfg.boundary)
    given = known_lens(cfg)
    estimates = [None] * y.shape[0] if given else estimate_defocus_batch(
        linear, max_radius=cfg.max_radius, shared_quantile=cfg.shared_quantile, edge_read_share=cfg.edge_read_share)
    lenses = [given or estimate.lens for estimate in estimates]
    noise, level = noise_model(y, cfg, tone, [lens if lens.radius > 0 or lens.softening > 0 else None
                                              for lens in lenses])
    radii = torch.tensor([lens.radius for lens in lenses], device=y.device)
    psf, half_widths = lens_psfs(lenses, device=y.device)  # each image's own half-width: its free border's
    return UniformBlur(psf, noise, radii, level, half_widths=half_widths,
                       boundary=cfg.boundary, at_bound=torch.tensor([bool(e and e.at_bound) for e in estimates]),
                       estimated=None if given else lenses, given=lenses if given else None,
                       fitted=None if given else [estimate.softening_fitted for estimate in estimates],
                       max_share=None if given else torch.tensor([estimate.max_share for estimate in estimates],
                                                                 dtype=torch.float64))
