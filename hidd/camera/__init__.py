"""The camera model, one copy for making data and for inverting it.

tone (Γ: sRGB, gamma, none), psf (lens PSFs: aperture, blades, aberration, colour, softening), optics
(OTF, FFT blur, depth-varying blur: gathered from a radius map, or layered with occlusion), noise
(Poisson–Gaussian in linear light), mosaic (Bayer + demosaicing), codec (quantisation, JPEG) and pipeline
(`Camera.render`: all of them in a camera's order).
"""
from hidd.camera.codec import jpeg, quantize
from hidd.camera.noise import PoissonGaussian, add_white_noise
from hidd.camera.optics import Layers, blur, blur_depth_varying, blur_layered, disparity_to_radius, otf
from hidd.camera.pipeline import Camera
from hidd.camera.psf import LensPSF, aperture_psf, gaussian_psf, stack_psfs
from hidd.camera.tone import TONE_CURVES, ToneCurve, tone_curve

__all__ = ["Camera", "Layers", "LensPSF", "PoissonGaussian", "TONE_CURVES", "ToneCurve", "add_white_noise",
           "aperture_psf", "blur", "blur_depth_varying", "blur_layered", "disparity_to_radius", "gaussian_psf", "jpeg",
           "otf", "quantize", "stack_psfs", "tone_curve"]
