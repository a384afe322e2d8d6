"""Reading and writing images as float arrays in [0, 1], with one-line errors for bad files.

Every problem with a user's file (missing, corrupt, truncated, alpha channel, wrong
channel count, unsupported pixel type) raises :class:`ImageError`, whose message is a
single line ``"{path}: {problem}"`` that a command-line tool can print as is.

Decoding goes through ``skimage.io`` (Pillow for PNG/JPEG/BMP, tifffile for TIFF),
except for 16-bit PNGs: Pillow silently truncates 16-bit RGB PNGs to 8 bits, so those
are decoded with torchvision's libpng decoder instead. Palette images (PNG, TIFF, BMP) are expanded by Pillow:
to one channel where every palette entry is gray (as some scanners and editors save grayscale), with
their transparency as an alpha channel where a pixel uses it (skimage would drop it and the grayness, and
reads a palette TIFF as its indices); a 1-bit (bilevel) image comes back as gray 0 or 1. Truncated files are errors,
never partially decoded images (Pillow's ``LOAD_TRUNCATED_IMAGES`` is left False).
An EXIF orientation tag (phones store portraits as rotated landscapes) is applied on read, so
that pixels come out as a viewer shows them.
"""

from __future__ import annotations

import os
import struct
import uuid
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import skimage.color
import skimage.io
import torchvision.io

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg"})
_CHANNEL_NAMES = {1: "grayscale (1 channel)", 3: "RGB (3 channels)"}
EXIF_ORIENTATION = 0x0112  # the EXIF tag of how the camera was held
# orientation → (flip rows, flip columns, transpose first), as Pillow's ImageOps.exif_transpose applies them
_ORIENTATIONS = {1: (False, False, False), 2: (False, True, False), 3: (True, True, False), 4: (True, False, False),
                 5: (False, False, True), 6: (False, True, True), 7: (True, True, True), 8: (True, False, True)}


class ImageError(ValueError):
    """A file that cannot be used as an image; ``str()`` is one line: ``"{path}: {problem}"``."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True, eq=False)  # eq off: comparing numpy arrays with == is ambiguous
class Image:
    """A decoded image.

    pixels: float32 array H×W×C in [0, 1]; C is 1 (gray) or 3 (RGB).
    bit_depth: 8 or 16, the precision the file was stored with, so results can be
        written back at the same depth (float TIFFs count as 16).
    path: the file it was read from.
    """

    pixels: np.ndarray
    bit_depth: int
    path: Path


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether the file name has one of IMAGE_EXTENSIONS (any letter case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(root: str | os.PathLike, exclude: Callable[[Path], bool] | None = None) -> list[Path]:
    """All image files under ``root``, recursively and sorted; hidden files and folders are skipped, and so are the
    folders below ``root`` for which ``exclude(folder)`` is true, with everything under them (a run's output folder
    inside its input folder).

    Symlinked sub-folders are followed, since datasets are often linked into a data folder, but each
    real folder is visited once (the first path to it in sorted order): a link back up the tree
    (``self -> .``, ``sub/up -> ..``) neither loops nor lists the same files twice.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder")
    found, visited = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        identity = _folder_identity(folder)
        if identity in visited or (exclude is not None and folder != str(root) and exclude(Path(folder))):
            subfolders[:] = []  # reached again through a link (its files are listed already), or excluded
            continue
        visited.add(identity)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found.extend(Path(folder) / name for name in files if not name.startswith(".") and is_image_file(name))
    return sorted(found)


def _folder_identity(folder: str) -> tuple[int, int]:
    info = os.stat(folder)  # follows links: the folder a link points to
    return info.st_dev, info.st_ino


def read_image(
    path: str | os.PathLike,
    *,
    channels: int | None = None,  # None: as stored (gray gives C=1); 1 or 3: anything else is an ImageError
    allow_alpha: bool = False,  # False: RGBA / gray+alpha is an ImageError; True: the alpha channel is dropped
) -> Image:
    """Read a PNG, JPEG, TIFF or BMP file (8- or 16-bit; float TIFFs already in [0, 1] are accepted).

    Channel conversion is never implicit: use :func:`to_gray` / :func:`to_rgb` where the
    caller has decided that converting is right.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, not {channels!r}")
    path = Path(path)
    if not path.exists():
        raise ImageError(path, "file not found")
    if not path.is_file():
        raise ImageError(path, "is not a file")
    if path.stat().st_size == 0:
        raise ImageError(path, "is empty (0 bytes)")

    pixels, bit_depth = _to_unit_float(path, _decode(path))
    if pixels.shape[2] == 4 and path.suffix.lower() in _JPEG_EXTENSIONS:
        # JPEG has no alpha: four channels there means CMYK.
        raise ImageError(path, "is a CMYK JPEG; convert it to RGB first")
    if pixels.shape[2] in (2, 4):
        if not allow_alpha:
            layout = "RGBA" if pixels.shape[2] == 4 else "gray + alpha"
            raise ImageError(path, f"has an alpha channel ({layout}); flatten it first")
        pixels = np.ascontiguousarray(pixels[..., :-1])
    if channels is not None and pixels.shape[2] != channels:
        needed = "1 channel is" if channels == 1 else f"{channels} channels are"
        raise ImageError(path, f"is {_CHANNEL_NAMES[pixels.shape[2]]} but {needed} needed")
    return Image(pixels=pixels, bit_depth=bit_depth, path=path)


def pixel_count(path: str | os.PathLike) -> int:
    """An image file's width × height from its header alone (no decoding: Pillow's, or tifffile's for the TIFFs
    Pillow cannot open, such as float ones); 0 where neither reads it (the file's problem is said when it is read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a decompression-bomb warning: the size is all that is wanted)
        try:
            with PIL.Image.open(path) as image:
                width, height = image.size
            return width * height
        except Exception:  # any header Pillow cannot read
            pass
        try:
            import tifffile  # (scikit-image's TIFF reader, which read_image uses)

            with tifffile.TiffFile(path) as tiff:
                shape = tiff.pages[0].shape
            return int(shape[0]) * int(shape[1])
        except Exception:  # not a TIFF either
            return 0


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """H×W×3 RGB → H×W×1 luminance (skimage's rgb2gray weights); H×W×1 is returned unchanged."""
    if pixels.shape[-1] == 1:
        return pixels
    return skimage.color.rgb2gray(pixels)[..., None].astype(np.float32, copy=False)


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """H×W×1 gray → H×W×3 with the value replicated; H×W×3 is returned unchanged."""
    if pixels.shape[-1] == 3:
        return pixels
    return skimage.color.gray2rgb(pixels[..., 0]).astype(np.float32, copy=False)


def write_image(
    path: str | os.PathLike,
    pixels: np.ndarray,  # float H×W, H×W×1 or H×W×3; values outside [0, 1] are clipped
    *,
    bit_depth: int = 8,  # 8 or 16 bits per channel
) -> None:
    """Write a PNG atomically (temporary file in the same folder, then os.replace), creating parent folders."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: write_image writes PNG files; give the file a .png name")
    if bit_depth not in (8, 16):
        raise ValueError(f"{path}: bit_depth must be 8 or 16, not {bit_depth!r}")
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ValueError(f"{path}: cannot write pixels of shape {pixels.shape}; expected H×W, H×W×1 or H×W×3")
    if not np.isfinite(pixels).all():
        raise ValueError(f"{path}: pixels contain NaN or infinity")

    levels = 2**bit_depth - 1
    quantised = np.rint(np.clip(pixels, 0.0, 1.0) * levels).astype(np.uint8 if bit_depth == 8 else np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden name so that list_images never picks up a half-written file.
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp.png")
    try:
        if bit_depth == 8:
            planes = quantised[..., 0] if quantised.shape[2] == 1 else quantised  # Pillow wants gray as H×W
            skimage.io.imsave(temporary, planes, check_contrast=False)
        else:
            temporary.write_bytes(_encode_png_16(quantised))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _decode(path: Path) -> np.ndarray:
    """The decoded array as stored (H×W or H×W×C, file dtype); decoder failures become ImageError."""
    try:
        with warnings.catch_warnings():
            # Deprecation notices about decoder internals (torchvision's codecs, imageio's legacy
            # plugins probed on unknown files) are nothing a user of hidd can act on.
            warnings.simplefilter("ignore", DeprecationWarning)
            if _is_16_bit_png(path):
                decoded = _decode_png_16(path)
            elif palette_mode := _palette_mode(path):
                # skimage expands a palette to RGB, dropping its transparency and its grayness (and returns a
                # TIFF's palette indices as gray)
                with PIL.Image.open(path) as image:
                    decoded = np.asarray(image.convert(palette_mode))
                if palette_mode.endswith("A") and decoded[..., -1].min() == 255:
                    decoded = decoded[..., :-1]  # a transparent entry no pixel uses (common after GIF → PNG)
            else:
                decoded = skimage.io.imread(path)
    except PermissionError as error:
        raise ImageError(path, "cannot be read (permission denied)") from error
    except Exception as error:  # decoders raise many unrelated types (OSError, SyntaxError, zlib.error, ...)
        # what the file's first bytes say it is: for a file that is no image, the decoders' words ("no backend ...
        # iomode r") mislead; for one that is, their first line says what they could not read
        kind = _format_of(path)
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:100]
        problem = (f"a truncated, corrupt or unsupported {kind} file ({detail})" if kind else
                   "its contents are not a PNG, JPEG, TIFF or BMP image, whatever its name says")
        raise ImageError(path, f"cannot be decoded: {problem}") from error
    return _upright(decoded, _exif_orientation(path))


_SIGNATURES = {_PNG_SIGNATURE: "PNG", b"\xff\xd8\xff": "JPEG", b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
               b"II+\x00": "TIFF", b"MM\x00+": "TIFF", b"BM": "BMP"}  # first bytes → format


def _format_of(path: Path) -> str | None:
    """The image format that the file's first bytes announce, or None for none of PNG, JPEG, TIFF and BMP."""
    with path.open("rb") as file:
        head = file.read(8)
    return next((kind for signature, kind in _SIGNATURES.items() if head.startswith(signature)), None)


def _palette_mode(path: Path) -> str | None:
    """For a single-frame palette image, the Pillow mode that keeps what it holds: "L" where every entry is gray,
    "RGB" otherwise, with "A" added where it has a transparent entry; None for any other file (a multi-frame one
    goes to skimage, which refuses it)."""
    try:
        with PIL.Image.open(path) as image:
            if image.mode != "P" or getattr(image, "n_frames", 1) > 1:
                return None
            entries = image.getpalette("RGB")  # (reads a TIFF's or BMP's raw palette too)
            transparent = "transparency" in image.info
    except (OSError, ValueError, SyntaxError):  # a file Pillow cannot read is decoded by another library
        return None
    if not entries:
        return None
    entries = np.asarray(entries, np.uint8).reshape(-1, 3)
    return ("L" if (entries == entries[:, :1]).all() else "RGB") + ("A" if transparent else "")


def _exif_orientation(path: Path) -> int:
    """The EXIF orientation tag (1-8) of the file; 1 (as stored) when there is none or it cannot be read."""
    try:
        with PIL.Image.open(path) as image:
            if image.format == "PNG" and "exif" not in image.info:  # none before the pixels; one after them
                return 1  # (rare) is not looked for: Pillow would decode the whole image to find it
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # no EXIF block, or a format Pillow does not open: the pixels stand as stored
        return 1
    return orientation if orientation in _ORIENTATIONS else 1


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels turned as a viewer shows them: the numpy form of Pillow's ImageOps.exif_transpose."""
    flip_rows, flip_columns, transpose = _ORIENTATIONS[orientation]
    if transpose:
        pixels = np.swapaxes(pixels, 0, 1)
    if flip_rows:
        pixels = pixels[::-1]
    if flip_columns:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels)


def _is_16_bit_png(path: Path) -> bool:
    with path.open("rb") as file:
        header = file.read(26)
    # The IHDR chunk always comes first; its bit-depth byte is at offset 24.
    return header.startswith(_PNG_SIGNATURE) and len(header) == 26 and header[24] == 16


def _decode_png_16(path: Path) -> np.ndarray:
    # 16-bit PNGs cannot be palette images, so the unchanged mode gives exact sample values.
    # (torchvision 0.29 deprecates its codecs in favour of torchcodec, not a hidd dependency.)
    encoded = torchvision.io.read_file(str(path))
    decoded = torchvision.io.decode_png(encoded, mode=torchvision.io.ImageReadMode.UNCHANGED)
    return decoded.permute(1, 2, 0).numpy()


def _to_unit_float(path: Path, raw: np.ndarray) -> tuple[np.ndarray, int]:
    """(H×W×C float32 in [0, 1], bit depth) from a decoded array, or an ImageError for unusable data."""
    if raw.ndim == 2:
        raw = raw[..., None]
    if raw.ndim != 3 or raw.shape[2] not in (1, 2, 3, 4):
        raise ImageError(
            path,
            f"has unsupported shape {raw.shape}; expected one H×W or H×W×C image "
            "(multi-page files are not supported)",
        )
    if raw.dtype == np.bool_:  # a bilevel (1-bit) image: black and white
        return raw.astype(np.float32), 8
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255, 8
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) / 65535, 16
    if raw.dtype.kind == "f":
        if not np.isfinite(raw).all():
            nan, inf = int(np.isnan(raw).sum()), int(np.isinf(raw).sum())
            raise ImageError(path, f"has {nan} NaN and {inf} infinite float pixels; only finite values in [0, 1] "
                                   "are images")
        if raw.min() < 0 or raw.max() > 1:
            raise ImageError(
                path,
                f"has float pixels outside [0, 1] (min {raw.min():.4g}, max {raw.max():.4g}); "
                "save it as 8- or 16-bit, or scaled to [0, 1]",
            )
        return raw.astype(np.float32), 16
    raise ImageError(
        path, f"has unsupported pixel type {raw.dtype}; expected 8- or 16-bit integers or floats in [0, 1]"
    )


def _encode_png_16(samples: np.ndarray) -> bytes:
    """A 16-bit gray or RGB PNG file from H×W×C uint16 samples.

    Written here because no project dependency can: Pillow (behind skimage.io) has no
    16-bit RGB mode and torchvision's encode_png takes uint8 only.
    """
    height, width, channel_count = samples.shape
    color_type = 0 if channel_count == 1 else 2  # PNG colour types: 0 gray, 2 RGB
    rows = samples.astype(">u2").reshape(height, -1).view(np.uint8)  # PNG stores samples big-endian
    scanlines = np.hstack([np.zeros((height, 1), np.uint8), rows])  # filter byte 0 (none) before each row
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(scanlines.tobytes()))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
