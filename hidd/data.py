"""Sharp (in-focus) images for learning the score prior: no pairs, just clean photos.

A root is a folder tree of images, or a DPDD root (recognised by ``train_c/target``; its
``{split}_c/target`` sharp images are used).

Augmentations keep photos photos (they are what a camera could have taken): horizontal flips; in crop mode a
small scale change, a crop of side s·n (s drawn log-uniformly from [1, scale_jitter], within the image) resized
down to n² with anti-aliasing (only ever down: upsampling would soften the photo); and an exposure change,
x ↦ Γ(clip(2^e Γ⁻¹(x), 0, 1)) with Γ the sRGB curve and e uniform in [−exposure, exposure] stops (highlights
clip as an over-exposed photo's do).
"""

from __future__ import annotations

import functools

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import skimage.transform
import torch
from torch.utils.data import Dataset

from hidd.camera.tone import SRGB
from hidd.config import DataConfig, in_repository
from hidd.imageio import Image, ImageError, list_images, read_image, to_gray, to_rgb

logger = logging.getLogger(__name__)

MODES = ("crop", "resize")
SPLITS = ("train", "val")

PathLike = str | os.PathLike


def resolve_root(root: PathLike, split: str = "train") -> Path:
    """The folder that actually holds the sharp images of ``root`` for ``split``.

    For a DPDD root that is ``{split}_c/target``; anything else is used as given
    (``split`` only matters for DPDD roots).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    root = in_repository(root)
    if not root.is_dir():
        hint = (" (the shipped configs train on data/corpus/tiles: make it with python scripts/prepare_corpus.py, "
                "or set data.roots)") if Path(root) == Path(DataConfig().roots[0]) else " (data.roots)"
        raise ValueError(f"{root}: no such folder{hint}")
    if (root / "train_c" / "target").is_dir():
        sharp_folder = root / f"{split}_c" / "target"
        if not sharp_folder.is_dir():
            raise ValueError(f"{root}: DPDD root has no {split}_c/target folder")
        return sharp_folder
    return root


def sharp_image_files(roots: PathLike | Iterable[PathLike], split: str = "train") -> list[Path]:
    """Every image file of ``roots`` for ``split``, sorted within each root, roots in the order given."""
    return [path for root in _as_list(roots) for path in list_images(resolve_root(root, split))]


def held_out_files(
    roots: PathLike | Iterable[PathLike],
    n: int,
    *,
    split: str = "train",
    usable: Callable[[Path], bool] = lambda path: True,  # e.g. is_usable with the run's size: skip unreadable files
) -> list[Path]:
    """``n`` usable files spread evenly over the sorted file list of ``roots``: the same files on every call.

    From each of ``n`` evenly spaced positions the first usable file at or after it is taken (wrapping
    around), so an unreadable file never becomes a validation image. Used as a validation set when no
    separate validation roots are given; pass the result as ``exclude`` to the training dataset and as
    ``only`` to the validation one.
    """
    files = sharp_image_files(roots, split)
    if n < 0 or n >= len(files):
        raise ValueError(
            f"cannot hold out {n} of the {len(files)} images in {_describe(roots)}; "
            "at least one must stay for training"
        )
    checked: dict[Path, bool] = {}
    chosen: list[Path] = []
    for index in range(n):
        start = index * len(files) // n
        for path in files[start:] + files[:start]:
            if path not in checked:
                checked[path] = usable(path)
            if checked[path] and path not in chosen:
                chosen.append(path)
                break
        else:
            raise ValueError(f"cannot hold out {n} images in {_describe(roots)}: only {len(chosen)} are usable")
    return chosen


def is_usable(path: Path, *, image_size: int, mode: str = "crop") -> bool:
    """Whether SharpImageDataset would keep this file (readable, and in crop mode at least image_size²)."""
    try:
        _usable_image(path, image_size, mode)
    except ImageError:
        return False
    return True


def _usable_image(path: Path, image_size: int, mode: str) -> Image:
    image = read_image(path, allow_alpha=True)
    height, width = image.pixels.shape[:2]
    if mode == "crop" and min(height, width) < image_size:
        raise ImageError(path, f"is {width}×{height}, smaller than the {image_size}×{image_size} crop")
    return image


class SharpImageDataset(Dataset):
    """Square patches of sharp images as float32 tensors (C, image_size, image_size) in [0, 1].

    Every file is decoded once at construction; unreadable or truncated files, and files
    smaller than the crop in crop mode, are skipped with a one-line logged warning. An
    alpha channel is dropped rather than skipped (exported PNGs often carry an opaque one).
    """

    def __init__(
        self,
        *,
        roots: PathLike | Sequence[PathLike],  # image folders or DPDD roots
        image_size: int,  # side of the square patches returned
        split: str = "train",  # 'train' or 'val': which DPDD sub-folder; ignored for other roots
        mode: str = "crop",  # 'crop': random image_size² crop; 'resize': whole image squashed to image_size²
        channels: int = 3,  # 3: RGB (gray files are replicated); 1: gray (RGB files go through rgb2gray)
        random_flip: bool = True,  # random horizontal flips, a free doubling of the data
        exclude: Iterable[PathLike] = (),  # files to leave out, e.g. the held-out validation images
        only: Iterable[PathLike] | None = None,  # if given, keep just these files of roots (the held-out ones)
        cache: bool = False,  # keep decoded images in memory (crop mode: as 8/16-bit integers)
        exposure: float = 0.0,  # random exposure change of up to this many stops (0: off)
        scale_jitter: float = 1.0,  # crop mode: random downscale of the crop by a factor in [1, this] (1: off)
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {channels!r}")
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive integer, not {image_size!r}")
        if exposure < 0 or scale_jitter < 1:
            raise ValueError(f"exposure must be >= 0 and scale_jitter >= 1, not {exposure!r} and {scale_jitter!r}")
        self.image_size = image_size
        self.exposure, self.scale_jitter = exposure, scale_jitter
        self.mode = mode
        self.channels = channels
        self.random_flip = random_flip
        self.cache = cache

        excluded = {Path(path).resolve() for path in exclude}
        kept = None if only is None else {Path(path).resolve() for path in only}
        candidates = [
            path
            for path in sharp_image_files(roots, split)
            if path.resolve() not in excluded and (kept is None or path.resolve() in kept)
        ]
        self.files: list[Path] = []
        self._cached: list[np.ndarray] = []
        skipped = []
        for path in candidates:
            try:
                image = _usable_image(path, self.image_size, self.mode)
            except ImageError as error:
                logger.warning("skipping %s", error)
                skipped.append(path.name)
                continue
            self.files.append(path)
            if cache:
                self._cached.append(self._stored_form(image))
        if not self.files:
            reason = f"{len(skipped)} skipped: {_some(skipped)}" if candidates else "no image files found"
            raise ValueError(f"no usable training images in {_describe(roots)} ({reason})")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.cache:
            pixels = self._cached[index]
        else:
            pixels = self._stored_form(read_image(self.files[index], allow_alpha=True))
        exposure = 2.0 ** ((2 * float(torch.rand(())) - 1) * self.exposure) if self.exposure > 0 else None
        if self.mode == "crop":
            # Crop before converting: the conversions then touch image_size² pixels, not the whole photo.
            crop = self._random_crop(pixels)
            if exposure is not None:  # on the window, before its resizing (8/16-bit levels: one look-up per pixel)
                integer = crop.dtype in (np.uint8, np.uint16)
                levels = np.arange(np.iinfo(crop.dtype).max + 1, dtype=crop.dtype) if integer else None
                crop, exposure = (_exposed(levels, exposure)[crop] if integer else _exposed(crop, exposure)), None
            pixels = self._convert_channels(_to_unit_float(crop))
        if self.random_flip and torch.rand(()) < 0.5:
            pixels = pixels[:, ::-1]
        # A copy, never a view: callers may modify the tensor in place, and it must not reach the cache.
        image = torch.from_numpy(pixels.transpose(2, 0, 1).copy())
        if image.shape[-1] != self.image_size:  # a scale-jittered window: down to image_size², anti-aliased
            image = torch.nn.functional.interpolate(image[None], size=(self.image_size, self.image_size),
                                                    mode="bilinear", antialias=True, align_corners=False)[0]
            image = image.clamp(0, 1)
        if exposure is not None:
            image = torch.from_numpy(_exposed(image.numpy(), exposure))
        return image

    def _stored_form(self, image: Image) -> np.ndarray:
        """What __getitem__ starts from: the resized patch, or (crop mode) the full image."""
        if self.mode == "resize":
            pixels = self._convert_channels(image.pixels)
            resized = skimage.transform.resize(pixels, (self.image_size, self.image_size), anti_aliasing=True)
            return np.clip(resized, 0.0, 1.0).astype(np.float32)
        if self.cache:
            # Integers at the file's depth take 1/4 or 1/2 of the memory of float32, losslessly.
            levels = 2**image.bit_depth - 1
            return np.rint(image.pixels * levels).astype(np.uint8 if image.bit_depth == 8 else np.uint16)
        return image.pixels

    def _convert_channels(self, pixels: np.ndarray) -> np.ndarray:
        return to_rgb(pixels) if self.channels == 3 else to_gray(pixels)

    def _random_crop(self, pixels: np.ndarray) -> np.ndarray:
        # torch's default generator, so that DataLoader's per-worker seeding applies.
        side = self.image_size
        if self.scale_jitter > 1:
            scale = float(np.exp(float(torch.rand(())) * np.log(self.scale_jitter)))
            side = min(round(self.image_size * scale), *pixels.shape[:2])
        top = int(torch.randint(0, pixels.shape[0] - side + 1, ()))
        left = int(torch.randint(0, pixels.shape[1] - side + 1, ()))
        return pixels[top : top + side, left : left + side]  # (resized in __getitem__)


def _exposed(pixels: np.ndarray, gain: float) -> np.ndarray:
    """Γ(clip(gain · Γ⁻¹(x), 0, 1)) as float32, Γ the sRGB curve; integer pixels read as levels of their type."""
    curve = SRGB()
    linear = curve.decode(torch.from_numpy(_to_unit_float(pixels)))
    return curve.encode((linear * gain).clamp(0, 1)).clamp(0, 1).numpy().astype(np.float32)


def _to_unit_float(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.float32:
        return pixels
    return pixels.astype(np.float32) / np.iinfo(pixels.dtype).max


def _as_list(roots: PathLike | Iterable[PathLike]) -> list[PathLike]:
    # A lone path is a common slip for a one-element list; iterating a str would give characters.
    return [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)


def _some(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _describe(roots: PathLike | Iterable[PathLike]) -> str:
    return ", ".join(str(root) for root in _as_list(roots))


def train_val_datasets(data_cfg, channels: int) -> tuple[SharpImageDataset, SharpImageDataset]:
    """Training and validation sets of a `data` config section: val_roots when given, else `val_images` files
    held out of the roots (the validation set is the training set when neither is available)."""
    d = data_cfg
    common = dict(image_size=d.image_size, mode=d.mode, channels=channels, cache=d.cache)
    if d.val_roots:
        held_out = []
        val = SharpImageDataset(roots=d.val_roots, split="val", random_flip=False, **common)
    else:
        usable = functools.partial(is_usable, image_size=d.image_size, mode=d.mode)
        held_out = held_out_files(d.roots, d.val_images, usable=usable) if d.val_images > 0 else []
        val = SharpImageDataset(roots=d.roots, split="train", random_flip=False, only=held_out, **common) \
            if held_out else None
    train = SharpImageDataset(roots=d.roots, split="train", random_flip=d.random_flip, exclude=held_out,
                              exposure=d.exposure, scale_jitter=d.scale_jitter, **common)
    return train, val if val is not None else train
