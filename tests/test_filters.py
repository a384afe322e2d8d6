"""hidd.blind.filters reproduces scipy.ndimage's filters (and numpy.gradient), borders included, in both dtypes."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from hidd.blind import filters


@pytest.fixture
def images():
    return torch.rand(2, 3, 23, 17, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("mode", ["reflect", "nearest"])
@pytest.mark.parametrize("sigma,truncate", [(0.5, 4.0), (1.5, 3.0), (6.0, 4.0)])  # 6: a radius beyond the width
def test_gaussian_filter_matches_ndimage(images, mode, sigma, truncate):
    ours = filters.gaussian_filter(images, sigma, mode, truncate)
    theirs = ndimage.gaussian_filter(images.numpy(), (0, 0, sigma, sigma), mode=mode, truncate=truncate)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [1, 3, 9, 41])  # 41: wider than the image
def test_uniform_and_rank_filters_match_ndimage(images, size):
    x = images.numpy()
    np.testing.assert_allclose(filters.uniform_filter(images, size).numpy(),
                               ndimage.uniform_filter(x, (1, 1, size, size)), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(filters.maximum_filter(images, size).numpy(),
                                  ndimage.maximum_filter(x, (1, 1, size, size)))
    np.testing.assert_array_equal(filters.minimum_filter(images, size).numpy(),
                                  ndimage.minimum_filter(x, (1, 1, size, size)))


def test_gradient_matches_numpy(images):
    gy, gx = filters.gradient(images)
    ny, nx = np.gradient(images.numpy(), axis=(2, 3))
    np.testing.assert_allclose(gy.numpy(), ny, atol=1e-15)
    np.testing.assert_allclose(gx.numpy(), nx, atol=1e-15)


def test_float32_stays_float32_and_close(images):
    smoothed = filters.gaussian_filter(images.float(), 1.5)
    assert smoothed.dtype == torch.float32 and smoothed.device == images.device
    np.testing.assert_allclose(smoothed.numpy(), filters.gaussian_filter(images, 1.5).numpy(), atol=1e-6)


@pytest.mark.parametrize("call", [lambda x: filters.gaussian_filter(x, 1.0, mode="wrap"),
                                  lambda x: filters.uniform_filter(x, 4), lambda x: filters.maximum_filter(x, 0),
                                  lambda x: filters.gaussian_filter(x, 0.0)])
def test_bad_arguments_are_refused_in_one_line(images, call):
    with pytest.raises(ValueError) as error:
        call(images)
    assert "\n" not in str(error.value)
