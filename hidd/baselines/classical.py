"""Classical non-blind (oracle PSF) deblurring baselines: Wiener and Richardson–Lucy from scikit-image,
BM3D deblurring from the optional package `bm3d`.

Images are float numpy arrays in [0, 1], (H, W, C) or (H, W). Each channel is deblurred
separately after reflect-padding by the PSF size (the filters assume periodic or zero
boundaries, which rings at the borders; BM3D's FFT inverse also needs the padded border
tapered, edge_taper), then cropped back and clipped to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from skimage.metrics import peak_signal_noise_ratio
from skimage.restoration import richardson_lucy, wiener
from tqdm import tqdm

__all__ = ["bm3d_deblur", "edge_taper", "wiener_deblur", "richardson_lucy_deblur", "tune", "METHODS"]


def _per_channel(y: np.ndarray, psf: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``fn`` to each reflect-padded channel of ``y`` and crop back."""
    y = np.asarray(y, dtype=np.float64)
    pad = max(psf.shape)
    planes = y[..., None] if y.ndim == 2 else y
    out = np.empty_like(planes)
    for c in range(planes.shape[-1]):
        padded = np.pad(planes[..., c], pad, mode="reflect")
        out[..., c] = fn(padded)[pad:-pad, pad:-pad]
    out = np.clip(out, 0.0, 1.0)
    return out[..., 0] if y.ndim == 2 else out


def wiener_deblur(y: np.ndarray, psf: np.ndarray, balance: float) -> np.ndarray:
    """Wiener-Hunt deconvolution; ``balance`` weighs the Laplacian regulariser (noise level)."""
    psf = np.asarray(psf, dtype=np.float64)
    return _per_channel(y, psf, lambda ch: wiener(ch, psf, balance, clip=False))


def richardson_lucy_deblur(y: np.ndarray, psf: np.ndarray, iterations: int) -> np.ndarray:
    """Richardson-Lucy deconvolution; fewer ``iterations`` regularise more (early stopping)."""
    psf = np.asarray(psf, dtype=np.float64)
    return _per_channel(y, psf, lambda ch: richardson_lucy(ch, psf, num_iter=int(iterations), clip=False))


def bm3d_deblur(y: np.ndarray, psf: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D deblurring (Mäkinen et al., pip package `bm3d`, the optional extra `hidd[bm3d]`): regularised
    inversion, then BM3D denoising, for white noise of std ``sigma``; the border is tapered (edge_taper) because
    the inversion takes the image as periodic. About 7 s per 256² channel on a CPU."""
    if not hasattr(np, "trapz"):  # bm4d, which bm3d imports, still calls np.trapz (removed in numpy 2)
        np.trapz = np.trapezoid
    try:
        import bm3d
    except ImportError as error:
        raise ImportError("BM3D deblurring needs the optional package: pip install 'hidd[bm3d]'") from error
    psf = np.asarray(psf, dtype=np.float64)

    def deblur(channel):  # (H, W, 1): bm3d 4.0.2–4.0.3 broadcasts a 2-D image's noise PSD to (1, H, W) and fails
        return np.reshape(bm3d.bm3d_deblurring(edge_taper(channel, psf)[..., None], float(sigma), psf), channel.shape)
    return _per_channel(y, psf, deblur)


def edge_taper(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Blend a 2-D image's border (the image at least as large as the PSF) into its circularly blurred
    copy, so that an FFT deconvolution, which takes the image as periodic, meets no jump at the border
    (MATLAB's edgetaper): the weight of the image is 1 − the PSF's normalised autocorrelation along each
    axis, 0 at the border. BM3D deblurring's regularised inverse amplifies such a jump across the whole
    image (a reflect-padded 128² photo: 9 dB, tapered: as on a periodic one)."""
    kernel = np.zeros_like(image)
    kernel[:psf.shape[0], :psf.shape[1]] = psf
    kernel = np.roll(kernel, (-(psf.shape[0] // 2), -(psf.shape[1] // 2)), axis=(0, 1))
    blurred = np.real(np.fft.ifft2(np.fft.fft2(image) * np.fft.fft2(kernel)))
    weight = np.ones_like(image)
    for axis, size in enumerate(image.shape):
        profile = psf.sum(axis=1 - axis)
        autocorrelation = np.real(np.fft.ifft(np.abs(np.fft.fft(profile, size)) ** 2))
        taper = 1 - autocorrelation / autocorrelation.max()
        weight = weight * (taper[:, None] if axis == 0 else taper[None, :])
    return weight * image + (1 - weight) * blurred


METHODS: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "wiener": wiener_deblur,
    "richardson_lucy": richardson_lucy_deblur,
    "bm3d": bm3d_deblur,
}


def tune(
    method: str | Callable[[np.ndarray, np.ndarray, float], np.ndarray],  # name in METHODS or a deblur fn
    blurred_list: Sequence[np.ndarray],
    sharp_list: Sequence[np.ndarray],
    psf: np.ndarray,
    grid: Sequence[float],  # candidate balances (Wiener) or iteration counts (RL)
) -> float:
    """Grid-search the method's parameter for the highest mean PSNR against the targets."""
    fn = METHODS[method] if isinstance(method, str) else method
    if len(blurred_list) != len(sharp_list) or not blurred_list:
        raise ValueError("blurred_list and sharp_list must be non-empty and of equal length")
    scores = {}
    for param in tqdm(grid, desc="tune", leave=False):
        scores[param] = np.mean(
            [peak_signal_noise_ratio(s, fn(b, psf, param), data_range=1) for b, s in zip(blurred_list, sharp_list)]
        )
    return max(scores, key=scores.get)
