"""Blind estimation of what a photo's camera did: its lens PSF (psf_fit), a depth-varying defocus map
(defocus_map), the PSF a depth-varying photo mostly shares (defocus, from radius_map's tile spectra) and its
noise-level function (noise), all from the photo alone, in the camera's light."""
from hidd.blind.defocus import estimate_defocus
from hidd.blind.defocus_map import DefocusMap, estimate_defocus_map
from hidd.blind.noise import estimate_nlf
from hidd.blind.psf_fit import MAX_RADIUS, PSFEstimate, estimate_psf

__all__ = ["MAX_RADIUS", "PSFEstimate", "estimate_defocus", "estimate_nlf", "estimate_psf", "DefocusMap",
           "estimate_defocus_map"]
