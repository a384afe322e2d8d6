"""Defocused inputs paired with their sharp ground truth, from plain folders or benchmark layouts.

Supported layouts (``dataset=``):

- ``dpdd``: ``test_c/source`` (defocused) + ``test_c/target`` (sharp), or a folder that
  directly holds ``source/`` + ``target/``; files are matched by name.
- ``realblur``: a test list ``RealBlur_J_test_list.txt`` or ``RealBlur_R_test_list.txt``
  in the root or its ``datalist/`` (or the list file itself as input). Each line is
  ``sharp_path blurred_path [...]``, relative to the dataset root; names are
  ``{scene}_{blurred stem}``, e.g. ``scene230_blur_1``.
- ``ded``: ``image/`` (defocused) + ``sharp/``, as read by the DED authors' loader, where
  ``image/image_12.jpg`` pairs with ``sharp/<prefix>_12.jpg``; files are matched by the
  part of the name after the last underscore. ``blur/`` + ``sharp/`` is accepted too.
- ``auto``: whichever of the above the folder looks like.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hidd.imageio import ImageError, is_image_file, list_images

DATASETS = ("dpdd", "realblur", "ded", "auto")
REALBLUR_LISTS = ("RealBlur_J_test_list.txt", "RealBlur_R_test_list.txt")

_SHOWN = 5  # how many offending files an error message names


@dataclass(frozen=True)
class Pair:
    """One image to reconstruct.

    name: unique among the pairs found together; safe to use as an output file stem.
    blurred: the defocused input.
    sharp: its ground truth, or None when there is nothing to compare with.
    """

    name: str
    blurred: Path
    sharp: Path | None = None


def find_pairs(
    input: str | os.PathLike,  # an image file or folder; with dataset=..., the dataset root (or RealBlur list)
    target: str | os.PathLike | None = None,  # folder (or file) of sharp images, matched by file name
    dataset: str | None = None,  # one of DATASETS: read a benchmark layout instead of plain folders
    skipped: list[ImageError] | None = None,  # if given, inputs whose names clash are left out and reported here
    exclude: Callable[[Path], bool] | None = None,  # folders not to search (an output folder inside the input)
) -> list[Pair]:
    """The images under ``input``, each with its sharp counterpart when one is known.

    Plain folders are searched recursively and matched by relative path without extension
    (``blur/a/1.png`` ↔ ``sharp/a/1.tif``); every input must have a target. Problems raise
    ValueError with a one-line message naming the folder or file. Files that cannot be told apart
    by name (``x.png`` next to ``x.jpg``, on either side, or two paths that give one output name)
    raise too, unless ``skipped`` is given: then each such input is an ImageError there and the
    others are paired. Folders for which ``exclude(folder)`` is true are not searched, on either side.
    """
    input = Path(input)
    if not input.exists():
        raise ValueError(f"{input}: no such file or folder")
    if dataset is not None:
        if target is not None:
            raise ValueError("give either a target folder or a dataset layout, not both")
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, not {dataset!r}")
        layout = detect_dataset(input) if dataset == "auto" else dataset
        return {"dpdd": _dpdd_pairs, "realblur": _realblur_pairs, "ded": _ded_pairs}[layout](input, skipped, exclude)

    if input.is_file():
        if not is_image_file(input):
            raise ValueError(f"{input}: not an image file (expected .png, .jpg, .jpeg, .tif, .tiff or .bmp)")
        if target is not None and Path(target).is_file():
            return [Pair(input.stem, input, Path(target))]
        blurred_root, blurred = input.parent, {input.stem: input}
    else:
        blurred_root, blurred = input, _keyed_images(input, _relative_stem, skipped, exclude)
    if target is None:
        entries = [(_relative_stem(path.relative_to(blurred_root)), path, None) for path in blurred.values() if path]
        return _named(entries, input, skipped)
    return _match(blurred, blurred_root, Path(target), _relative_stem, input, skipped, exclude)


def detect_dataset(root: str | os.PathLike) -> str:
    """Which of 'dpdd', 'realblur' or 'ded' the layout of ``root`` is; ValueError if none."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".txt":
        return "realblur"
    if (root / "test_c" / "source").is_dir() or ((root / "source").is_dir() and (root / "target").is_dir()):
        return "dpdd"
    if _realblur_lists_in(root):
        return "realblur"
    if _ded_blurred_folder(root) is not None:
        return "ded"
    raise ValueError(
        f"{root}: not a known dataset layout (expected DPDD test_c/source + test_c/target, "
        f"a RealBlur test list, or DED image/ + sharp/)"
    )


def _dpdd_pairs(root: Path, skipped: list | None, exclude=None) -> list[Pair]:
    for base in (root / "test_c", root):
        if (base / "source").is_dir():
            source = base / "source"
            blurred = _keyed_images(source, _relative_stem, skipped, exclude)
            return _match(blurred, source, base / "target", _relative_stem, root, skipped, exclude)
    raise ValueError(f"{root}: not a DPDD folder (expected test_c/source and test_c/target, or source/ and target/)")


def _ded_pairs(root: Path, skipped: list | None, exclude=None) -> list[Pair]:
    blurred_folder = _ded_blurred_folder(root)
    if blurred_folder is None:
        raise ValueError(f"{root}: not a DED folder (expected image/ and sharp/, or blur/ and sharp/)")
    blurred = _keyed_images(blurred_folder, _frame_key, skipped, exclude)
    return _match(blurred, blurred_folder, root / "sharp", _frame_key, root, skipped, exclude)


def _ded_blurred_folder(root: Path) -> Path | None:
    if not (root / "sharp").is_dir():
        return None
    return next((root / name for name in ("image", "blur") if (root / name).is_dir()), None)


def _realblur_pairs(input: Path, skipped: list | None, exclude=None) -> list[Pair]:  # (a list names its files)
    listing = input if input.is_file() else _realblur_list(input)
    # Listed paths are relative to the dataset root: the folder holding the list, or holding its datalist/.
    root = listing.parent.parent if listing.parent.name == "datalist" else listing.parent
    try:
        lines = listing.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{listing}: cannot be read as a text list ({error})") from error
    named, missing = [], []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{listing}: line {number} has one path; expected 'sharp_path blurred_path'")
        sharp, blurred = Path(fields[0]), Path(fields[1])
        missing += [str(path) for path in (sharp, blurred) if not (root / path).is_file()]
        scene = blurred.parts[-3] if len(blurred.parts) >= 3 else ""  # .../scene230/blur/blur_1.png
        named.append((f"{scene}_{blurred.stem}" if scene else blurred.stem, root / blurred, root / sharp))
    if not named:
        raise ValueError(f"{listing}: the list is empty")
    if missing:
        raise ValueError(f"{listing}: {len(missing)} listed files are missing under {root}: {_some(missing)}")
    return _named(named, listing, skipped)


def _realblur_list(root: Path) -> Path:
    found = _realblur_lists_in(root)
    if not found:
        raise ValueError(f"{root}: no RealBlur test list ({' or '.join(REALBLUR_LISTS)}, here or in datalist/)")
    if len(found) > 1:
        raise ValueError(f"{root}: several RealBlur test lists ({_some(found)}); pass the one to use as the input")
    return found[0]


def _realblur_lists_in(root: Path) -> list[Path]:
    candidates = [folder / name for folder in (root, root / "datalist") for name in REALBLUR_LISTS]
    return [path for path in candidates if path.is_file()]


def _relative_stem(relative: Path) -> str:
    return relative.with_suffix("").as_posix()


def _frame_key(relative: Path) -> str:
    # DED names the two sides differently ('image_12' vs '<prefix>_12'); the frame number is shared.
    return (relative.parent / relative.stem.rsplit("_", 1)[-1]).as_posix()


def _keyed_images(folder: Path, key: Callable[[Path], str], skipped: list | None,
                  exclude=None) -> dict[str, Path | None]:
    """The images under ``folder`` by matching key. Two files with one key are an error, or, with
    ``skipped``, both are reported there and the key maps to None (neither can be used)."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in list_images(folder, exclude):
        groups[key(path.relative_to(folder))].append(path)
    if not groups:
        raise ValueError(f"{folder}: no images found")
    keyed: dict[str, Path | None] = {}
    for matching, paths in groups.items():
        keyed[matching] = paths[0] if len(paths) == 1 else None
        if len(paths) > 1:
            names = " and ".join(str(path.relative_to(folder)) for path in paths)
            if skipped is None:
                raise ValueError(f"{folder}: {names} cannot be told apart; rename one")
            skipped.extend(ImageError(path, f"{names} cannot be told apart (outputs and targets are "
                                            "matched by name without extension); rename one") for path in paths)
    return keyed


def _match(
    blurred: dict[str, Path | None],  # blurred images by matching key (None: a clash, reported already)
    blurred_root: Path,  # the folder they were found in; their paths relative to it become the names
    target: Path,  # folder of sharp images
    key: Callable[[Path], str],  # matching key of a sharp image from its path relative to target
    where: Path,  # what to name in error messages
    skipped: list | None,  # where inputs are reported that cannot be paired by name (else: an error)
    exclude=None,  # which folders not to search for targets
) -> list[Pair]:
    """Pairs of the blurred images with the images of ``target`` under the same key; all must match."""
    if target.is_file():
        raise ValueError(f"{target}: is a file; with a folder of inputs give a folder of sharp images as --target")
    if not target.is_dir():
        raise ValueError(f"{target}: no such folder")
    sharp = _keyed_images(target, key, None if skipped is None else [], exclude)  # a clash there is reported per input
    ambiguous = {matching for matching in blurred if matching in sharp and sharp[matching] is None}  # two targets
    for matching in sorted(ambiguous):  # (keys are ambiguous only where `skipped` is given)
        if blurred[matching] is not None:
            skipped.append(ImageError(blurred[matching], f"its target in {target} is ambiguous (two files named "
                                                         f"{matching} apart from the extension); rename one"))
    blurred = {matching: path for matching, path in blurred.items() if path is not None and matching not in ambiguous}
    unmatched = [
        path.relative_to(blurred_root).as_posix() for matching, path in blurred.items() if matching not in sharp
    ]
    if unmatched:
        raise ValueError(
            f"{target}: no sharp image for {len(unmatched)} of {len(blurred)} inputs: {_some(unmatched)}"
        )
    entries = [
        (_relative_stem(path.relative_to(blurred_root)), path, sharp[matching]) for matching, path in blurred.items()
    ]
    return _named(entries, where, skipped)


def _named(entries: list[tuple[str, Path, Path | None]], where: Path, skipped: list | None) -> list[Pair]:
    """Pairs from (name, blurred, sharp); sub-folder separators become '_', and names must be unique
    (inputs that would share one are an error, or, with ``skipped``, reported there and left out)."""
    pairs = [Pair(name.replace("/", "_"), blurred, sharp) for name, blurred, sharp in entries]
    by_name: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_name[pair.name].append(pair)
    clashes = {name: same for name, same in by_name.items() if len(same) > 1}
    for name, same in clashes.items():
        paths = " and ".join(str(pair.blurred) for pair in same)
        if skipped is None:
            raise ValueError(f"{where}: {paths} would both be named {name!r}; rename one")
        skipped.extend(ImageError(pair.blurred, f"{paths} would both be named {name!r}; rename one")
                       for pair in same)
    return [pair for pair in pairs if pair.name not in clashes]


def _some(items: list) -> str:
    shown = ", ".join(str(item) for item in items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
