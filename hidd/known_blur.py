"""A photo's known defocus, read from a file beside the photos instead of being estimated.

Where the defocus of a photo is known (from a depth sensor, a dual-pixel disparity, another estimator, or a
benchmark's ground truth) the data step can use it as it is: hidd-reconstruct --radius-maps DIR or --layers DIR,
one file per photo, named as its result is: the photo's stem, with the folders below --input joined by '_'
(sub/a.jpg → DIR/sub_a.npy; a dataset's photos by the names in metrics.csv).

  radius map   DIR/STEM.npy   a float array (H, W): each pixel's defocus radius in pixels, ≥ 0 (the camera
               benchmark's radius_maps/ layout). The data step is the gather blur of hidd.operators.DepthVaryingBlur.
  layers       DIR/STEM.npz   arrays `alphas` (L, H, W), each layer's coverage in [0, 1] (or a boolean mask) from
               far to near (the farthest usually all ones), and `radii` (L,), each layer's defocus radius in pixels,
               ≥ 0. The data step is the camera's layered blur with occlusion (hidd.camera.optics.blur_layered,
               inverted by hidd.operators.LayeredBlur): an in-focus subject's colour does not spread over the
               background behind it.

A file that is missing, unreadable or of another size than its photo is that photo's one-line failure (ImageError,
naming the file), never the run's.
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hidd.camera.optics import Layers
from hidd.imageio import ImageError

SUFFIX = {"radius_maps": ".npy", "layers": ".npz"}  # what each kind of known defocus is stored as
NOUN = {"radius_maps": "radius map", "layers": "layers"}  # one photo's file of each kind, in messages


@dataclass(frozen=True)
class KnownBlur:
    """Where the photos' known defocus lies: `kind` (radius_maps or layers) in `folder`, one file per photo stem."""
    kind: str
    folder: Path

    def __post_init__(self):
        if self.kind not in SUFFIX:
            raise ValueError(f"known defocus: {self.kind!r} is not a kind; choose from {', '.join(SUFFIX)}")

    def path(self, stem: str) -> Path:
        return self.folder / f"{stem}{SUFFIX[self.kind]}"

    def read(self, stem: str, size: tuple[int, int]) -> torch.Tensor | Layers:
        """The known defocus of the photo `stem` of `size` (H, W): a radius map (H, W) or Layers."""
        path = self.path(stem)
        if not path.is_file():
            raise ImageError(path, f"no such file: every photo needs its {NOUN[self.kind]} "
                                   f"({stem}{SUFFIX[self.kind]} in {self.folder})")
        return read_radius_map(path, size) if self.kind == "radius_maps" else read_layers(path, size)

    def arguments(self, known: list) -> dict:
        """The keyword argument of hidd.deblur.Deblurrer for photos' known defocus as `read` gave it: radius_map
        (B, H, W) or layers [Layers, ...]."""
        return {"layers": list(known)} if self.kind == "layers" else {"radius_map": torch.stack(list(known))}


READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)  # a file numpy cannot read


def _arrays(path: Path, what: str, keys: tuple[str, ...] | None = None):
    """The one array of a .npy file (keys None), or the named arrays of a .npz file (keys), all read here: what
    cannot be read (a damaged archive, pickled objects, a folder) is an ImageError naming the file."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            if keys is not None:
                raise ImageError(path, f"is a single array; {what} is a .npz file holding {' and '.join(keys)}")
            return loaded
        with loaded:
            if keys is None:
                raise ImageError(path, f"is a .npz archive; {what} is one array saved with numpy.save (.npy)")
            missing = [key for key in keys if key not in loaded.files]
            if missing:
                raise ImageError(path, f"has no {' or '.join(repr(m) for m in missing)} (it holds {loaded.files})")
            return {key: loaded[key] for key in keys}
    except ImageError:
        raise
    except READ_ERRORS as error:
        detail = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        raise ImageError(path, f"cannot be read as {what} ({type(error).__name__}: {detail})".replace(": )", ")")
                         ) from None


def _real(path: Path, name: str, array, ndim: int, what: str, kinds: str = "fiu") -> np.ndarray:
    """A finite float32 array of `ndim` dimensions from an array of numbers (dtype kinds `kinds`)."""
    array = np.asarray(array)
    if array.dtype.kind not in kinds or array.ndim != ndim:
        raise ImageError(path, f"{name} must be a {ndim}-D array of numbers ({what}); it is {array.dtype} of shape "
                               f"{array.shape}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ImageError(path, f"{name} holds non-finite values")
    return array


def read_radius_map(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """A radius map (H, W) in pixels from a .npy file, checked: the photo's size, finite, ≥ 0."""
    radius = _real(path, "the radius map", _arrays(path, "a radius map"), 2, "H, W")
    if radius.shape != tuple(size):
        raise ImageError(path, f"radius map is {radius.shape[1]}x{radius.shape[0]} but its photo is "
                               f"{size[1]}x{size[0]}")
    if (radius < 0).any():
        raise ImageError(path, f"radius map holds negative radii (min {radius.min():.3g} px)")
    return torch.from_numpy(radius)


def read_layers(path: Path, size: tuple[int, int]) -> Layers:
    """Layers from a .npz file holding `alphas` (L, H, W) in [0, 1] (or booleans), far to near, and `radii` (L,)
    ≥ 0 px."""
    arrays = _arrays(path, "layers", ("alphas", "radii"))
    alphas = _real(path, "alphas", arrays["alphas"], 3, "L, H, W", kinds="biuf")
    radii = _real(path, "radii", arrays["radii"], 1, "L")
    if len(radii) != len(alphas) or not len(radii):
        raise ImageError(path, f"{len(radii)} radii for {len(alphas)} layer coverages")
    if alphas.shape[1:] != tuple(size):
        raise ImageError(path, f"layers are {alphas.shape[2]}x{alphas.shape[1]} but their photo is "
                               f"{size[1]}x{size[0]}")
    if alphas.min() < 0 or alphas.max() > 1:
        raise ImageError(path, f"alphas must lie in [0, 1] (they span {alphas.min():.3g}…{alphas.max():.3g})")
    if (radii < 0).any():
        raise ImageError(path, f"radii must be ≥ 0 px (given {radii.tolist()})")
    return Layers(torch.from_numpy(alphas), tuple(float(r) for r in radii))


def save_layers(path: Path, layers: Layers) -> None:
    """Write Layers (coverages (L, H, W)) as read_layers reads them."""
    np.savez(path, alphas=layers.alphas.detach().cpu().numpy().astype(np.float32),
             radii=np.asarray(layers.radii, dtype=np.float32))
