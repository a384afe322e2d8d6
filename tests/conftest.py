"""Shared fixtures: tiny synthetic sharp images (never skimage's photos, which are the test set)."""
from __future__ import annotations

import numpy as np
import pytest

from hidd.imageio import write_image


def synthetic_photo(seed: int, size: int = 48) -> np.ndarray:
    """Smooth colour gradients with a few sharp-edged rectangles: a stand-in for a sharp photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (f * xx + g * yy) + p)
                      for f, g, p in rng.uniform(0.2, 1.5, (3, 3))], axis=-1)
    for _ in range(4):
        y0, x0 = rng.integers(0, size - 8, 2)
        h, w = rng.integers(4, size // 2, 2)
        image[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 1, 3)
    return image.clip(0, 1).astype(np.float32)


@pytest.fixture
def sharp_folder(tmp_path):
    folder = tmp_path / "sharp"
    for i in range(6):
        write_image(folder / f"img{i}.png", synthetic_photo(i))
    return folder
