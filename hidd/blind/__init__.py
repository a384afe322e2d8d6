"""Blind estimation of what a photo's camera did: its lens PSF (psf_fit), a depth-varying radius map
(radius_map), the PSF a depth-varying photo mostly shares (defocus) and its noise-level function (noise),
all from the photo alone, in the camera's light."""
from hidd.blind.defocus import estimate_defocus
from hidd.blind.noise import estimate_nlf
from hidd.blind.psf_fit import MAX_RADIUS, PSFEstimate, estimate_psf
from hidd.blind.radius_map import estimate_radius_map

__all__ = ["MAX_RADIUS", "PSFEstimate", "estimate_defocus", "estimate_nlf", "estimate_psf", "estimate_radius_map"]
