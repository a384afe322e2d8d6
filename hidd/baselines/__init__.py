"""The methods hidd is compared with.

classical: non-blind deconvolution given the true PSF (Wiener, Richardson–Lucy, BM3D).
networks:  the paper's learned comparison methods, DnCNN, FFDNet and CycleGAN (`hidd.baselines.networks`),
           trained by `hidd-train-baseline` on pairs from the camera model (`hidd.baselines.pairs`).
"""
from hidd.baselines.classical import METHODS, bm3d_deblur, richardson_lucy_deblur, tune, wiener_deblur

__all__ = ["METHODS", "bm3d_deblur", "richardson_lucy_deblur", "tune", "wiener_deblur"]
