"""The local power spectrum of a photo at every pixel: what a tile's spectral fit reads (hidd.blind.psf_fit), dense.

A disk of radius r multiplies the scene's spectrum by its OTF, whose first zero lies at |f| ≈ 0.61 / r cycles/px
(0.30 at r = 2, 0.05 at r = 12): a defocused region's power falls off, and dips, where its blur's notches are,
whatever its texture; an in-focus one falls as the scene's power law. A tile's Welch spectrum reads that from 64 px;
a network reading it per pixel (hidd.blind.map_net, model.bands) gets the same evidence at every pixel as K band
energies of the grey photo g (the channels' mean), each through an isotropic log-Gabor filter,

    G_k(f) = exp(−ln²(|f| / f_k) / (2 σ²)),   f_k = F_LOW (F_HIGH / F_LOW)^(k / (K − 1)),  k = 0 … K − 1,
    e_k = box_W ∗ (F⁻¹[G_k ĝ])²,

and their shape, the log energies less their mean over the bands,

    s_k = ln(e_k + ε) − (1/K) Σ_j ln(e_j + ε).

An offset of the region changes no e_k (G_k(0) = 0) and a contrast gain a multiplies every e_k by a², so s does
not change with either while the e_k are well above ε; a noise-free flat region reads 0 (every e_k ≪ ε), a noisy
one its noise's shape (white: rising with f_k, as an in-focus texture does). σ = BANDWIDTH (in ln f) gives band k
a spatial extent of about 1 / (2π f_k σ) px (11 px at F_LOW, 1 px at F_HIGH): the dense spectrum trades a tile's
frequency resolution for position. The energy is the square of a real (even-phase) response, so at the lowest bands
it keeps a little of its ripple at 2 f_k (about 0.2 in ln at F_LOW; 0.02 at 0.1 cycles/px). g is reflect-padded by
PAD px before its FFT (less on smaller photos), so on photos over PAD px no band wraps around the frame; box_W is
hidd.blind.filters.uniform_filter over W = WINDOW px, its border the edge repeated. The bands are filtered one at a
time (memory: one band of a large photo at once).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hidd.blind import filters

F_LOW = 0.04  # cycles/px: the lowest band (the first notch of a 15 px disk)
F_HIGH = 0.4  # cycles/px: the highest (demosaicing owns the corner above)
BANDWIDTH = 0.35  # σ of each band in ln f (with 8 bands, neighbours cross at about 0.9 of their peaks)
WINDOW = 15  # px: the side of the box its energies are averaged over
FLOOR = 1e-6  # ε: a band energy below this counts as none (keeps ln finite on a noise-free flat region)
PAD = 32  # px of reflect padding before the FFT


def band_centres(bands: int) -> torch.Tensor:
    """The centre frequencies f_k (cycles/px) of `bands` ≥ 2 log-spaced bands."""
    if bands < 2:
        raise ValueError(f"local spectrum: at least 2 bands, got {bands}")
    return F_LOW * (F_HIGH / F_LOW) ** (torch.arange(bands, dtype=torch.float64) / (bands - 1))


def local_spectrum(y: torch.Tensor, bands: int) -> torch.Tensor:
    """The shape s_k (B, bands, H, W) of the local spectrum of photos y (B, C, H, W) (the module docstring), in y's
    dtype and device."""
    if y.ndim != 4:
        raise ValueError(f"local_spectrum: expected photos (B, C, H, W), got {tuple(y.shape)}")
    gray = y.mean(dim=1, keepdim=True)
    h, w = gray.shape[-2:]
    pad = min(PAD, h - 1, w - 1)
    padded = F.pad(gray, (pad, pad, pad, pad), mode="reflect") if pad > 0 else gray
    ph, pw = padded.shape[-2:]
    fy = torch.fft.fftfreq(ph, device=y.device, dtype=y.dtype)[:, None]
    fx = torch.fft.rfftfreq(pw, device=y.device, dtype=y.dtype)[None, :]
    log_f = torch.log(torch.hypot(fy, fx).clamp_min(1e-12))  # ln |f|; the mean (f = 0) gets G_k ≈ 0
    spectrum = torch.fft.rfft2(padded)
    energy = []
    for centre in band_centres(bands).tolist():
        gain = torch.exp(-(log_f - math.log(centre)).square() / (2 * BANDWIDTH ** 2))
        response = torch.fft.irfft2(spectrum * gain, s=(ph, pw))[..., pad:pad + h, pad:pad + w]
        energy.append(filters.uniform_filter(response.square(), WINDOW, mode="nearest"))
    energy = torch.cat(energy, dim=1)
    logs = torch.log(energy + FLOOR)
    return logs - logs.mean(dim=1, keepdim=True)

