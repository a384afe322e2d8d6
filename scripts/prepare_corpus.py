"""Build the sharp-photo training corpus from photos shipped in Debian packages.

Sources (see docs/DATA.md): the real photos among the KDE Plasma wallpapers and the
OpenCV sample photos (opencv-doc). Each photo is downscaled (sharper pixels, fewer JPEG
artefacts), cut into overlapping tiles, and only in-focus tiles are kept: the variance of
the Laplacian of a tile must reach both a fraction of the photo's own 90th percentile
(rejects bokeh relative to the in-focus subject) and an absolute floor (rejects flat or
uniformly soft photos). Deterministic: there is no random step.

Writes to OUT (default data/corpus):
  photos/NAME.png   downscaled whole photos
  tiles/NAME_yY_xX.png   kept tiles (what training reads by default)
  manifest.json     per photo: source, package, licence, scale, kept tile boxes
  settings.yaml     the resolved settings

skimage's bundled photos are the public test set and are never used here.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from skimage import color, filters, io, transform
from skimage.util import img_as_ubyte, view_as_windows
from tqdm import tqdm

PLASMA_DIR = "usr/share/wallpapers"
PLASMA_PHOTOS = (
    "BytheWater", "ColdRipple", "ColorfulCups", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)  # the other wallpapers are renders
OPENCV_DIR = "usr/share/doc/opencv-doc/examples/data"
OPENCV_PHOTOS = (
    "aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "building.jpg",
    "butterfly.jpg", "chicky_512.png", "fruits.jpg", "graf1.png", "graf3.png", "home.jpg",
    "leuvenA.jpg", "leuvenB.jpg", "messi5.jpg", "orange.jpg", "rubberwhale1.png", "squirrel_cls.jpg",
)  # text_defocus.jpg is a real defocused photo: demo only
PACKAGES = {"plasma": "plasma-workspace-wallpapers", "ocv": "opencv-doc"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--debs", type=Path, default=Path("/tmp/debs"),
                   help="folder with the unpacked packages in plasma/ and ocv/ (fetched with apt-get download if missing)")
    p.add_argument("--out", type=Path, default=Path("data/corpus"), help="output folder")
    p.add_argument("--tile", type=int, default=128, help="tile side in pixels")
    p.add_argument("--stride", type=int, default=64, help="tile stride in pixels")
    p.add_argument("--plasma-scale", type=int, default=3, help="downscale factor of the 2560x1600 wallpapers")
    p.add_argument("--min-short-side", type=int, default=256,
                   help="OpenCV photos are downscaled by the largest factor keeping at least this short side")
    p.add_argument("--max-opencv-scale", type=int, default=2, help="cap on the OpenCV downscale factor")
    p.add_argument("--rel-threshold", type=float, default=0.25,
                   help="keep tiles whose focus measure >= this fraction of the photo's 90th percentile")
    p.add_argument("--abs-threshold", type=float, default=2e-3,
                   help="absolute floor on the focus measure (variance of the Laplacian, intensities in [0, 1])")
    p.add_argument("--overwrite", action="store_true", help="replace existing photos/ and tiles/ in OUT")
    p.add_argument("--smoke-set", type=Path, metavar="DIR",
                   help="also write the middle kept tile of each Plasma photo, halved to 64x64, to DIR (the committed "
                        "examples/train that configs/tiny.yaml trains on, so a smoke run needs no corpus)")
    args = p.parse_args(argv)
    for name in ("tile", "stride", "plasma_scale", "min_short_side", "max_opencv_scale"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def ensure_unpacked(debs: Path) -> None:
    """Download and unpack the two packages into DEBS/{plasma,ocv} unless already there (no install)."""
    missing = {k: v for k, v in PACKAGES.items() if not (debs / k / "usr").is_dir()}
    if not missing:
        return
    debs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=debs) as work:
        subprocess.run(["apt-get", "download", *missing.values()], cwd=work, check=True, capture_output=True)
        for key, package in missing.items():
            debs_found = sorted(Path(work).glob(f"{package}_*.deb"))
            if not debs_found:
                raise FileNotFoundError(f"apt-get download produced no {package} .deb")
            deb = debs_found[-1]
            subprocess.run(["dpkg", "-x", str(deb), str(debs / key)], check=True, capture_output=True)


def package_licence(root: Path, package: str) -> str:
    """The licence of the 'Files: *' stanza of the package's Debian copyright file."""
    text = (root / "usr/share/doc" / package / "copyright").read_text(encoding="utf-8")
    match = re.search(r"^Files: \*\n(?:.+\n)*?License: (.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def sources(debs: Path) -> list[dict]:
    """One record per photo: name, path, package, licence, author, downscale factor (None: by size)."""
    plasma_pkg = package_licence(debs / "plasma", PACKAGES["plasma"])
    ocv_pkg = package_licence(debs / "ocv", PACKAGES["ocv"])
    out = []
    for name in PLASMA_PHOTOS:
        folder = debs / "plasma" / PLASMA_DIR / name
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))["KPlugin"]
        out.append({
            "name": f"plasma_{name}",
            "path": folder / "contents/images/2560x1600.jpg",
            "package": PACKAGES["plasma"],
            "licence": f"{meta.get('License', 'unknown')} (wallpaper metadata.json); package copyright: {plasma_pkg}",
            "author": ", ".join(a["Name"] for a in meta.get("Authors", [])),
        })
    for file in OPENCV_PHOTOS:
        out.append({
            "name": f"opencv_{Path(file).stem}",
            "path": debs / "ocv" / OPENCV_DIR / file,
            "package": PACKAGES["ocv"],
            "licence": f"{ocv_pkg} (opencv-doc copyright, Files: *)",
            "author": "not stated (OpenCV sample data)",
        })
    return out


def load_rgb(path: Path) -> np.ndarray:
    """Float RGB image in [0, 1]; gray is replicated, alpha composited on white."""
    img = io.imread(path)
    if img.ndim == 2:
        img = color.gray2rgb(img)
    elif img.shape[-1] == 4:
        img = color.rgba2rgb(img)
    return img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)


def focus_measures(img: np.ndarray, tile: int, stride: int) -> np.ndarray:
    """Variance of the Laplacian of the luminance per tile, shape (rows, cols)."""
    # Laplacian of the whole photo so tile borders add no spurious edges
    lap = filters.laplace(color.rgb2gray(img))
    return view_as_windows(lap, (tile, tile), stride).var(axis=(-2, -1))


def main(argv=None) -> None:
    args = parse_args(argv)
    photos_dir, tiles_dir = args.out / "photos", args.out / "tiles"
    for d in (photos_dir, tiles_dir):
        if d.exists() and any(d.iterdir()):
            if not args.overwrite:
                raise ValueError(f"{d} is not empty (pass --overwrite to replace it)")
            shutil.rmtree(d)
        d.mkdir(parents=True, exist_ok=True)
    ensure_unpacked(args.debs)

    manifest, total_tiles, total_kept = [], 0, 0
    for src in tqdm(sources(args.debs), desc="photos"):
        img = load_rgb(src["path"])
        if src["package"] == PACKAGES["plasma"]:
            scale = args.plasma_scale
        else:  # favour sharpness: the largest factor that keeps the short side, within the cap
            scale = int(np.clip(min(img.shape[:2]) // args.min_short_side, 1, args.max_opencv_scale))
        if scale > 1:
            img = np.clip(transform.rescale(img, 1 / scale, anti_aliasing=True, channel_axis=-1), 0, 1)
        img8 = img_as_ubyte(img)
        io.imsave(photos_dir / f"{src['name']}.png", img8, check_contrast=False)

        boxes = []
        if min(img.shape[:2]) >= args.tile:
            fm = focus_measures(img, args.tile, args.stride)
            threshold = max(args.rel_threshold * np.percentile(fm, 90), args.abs_threshold)
            for i, j in zip(*np.nonzero(fm >= threshold)):
                y, x = int(i) * args.stride, int(j) * args.stride
                io.imsave(tiles_dir / f"{src['name']}_y{y:04d}_x{x:04d}.png",
                          img8[y : y + args.tile, x : x + args.tile], check_contrast=False)
                boxes.append([y, x, args.tile, args.tile])
            total_tiles += fm.size
            if args.smoke_set and boxes and src["package"] == PACKAGES["plasma"]:
                y, x, h, w = boxes[len(boxes) // 2]
                half = transform.rescale(img[y:y + h, x:x + w], 0.5, anti_aliasing=True, channel_axis=-1)
                args.smoke_set.mkdir(parents=True, exist_ok=True)
                io.imsave(args.smoke_set / f"{src['name']}.png", img_as_ubyte(np.clip(half, 0, 1)),
                          check_contrast=False)
            tqdm.write(f"{src['name']}: kept {len(boxes)}/{fm.size} tiles (downscale {scale}x)")
        else:
            tqdm.write(f"{src['name']}: smaller than one tile, no tiles")
        total_kept += len(boxes)
        manifest.append({
            "name": src["name"],
            "source": str(src["path"].relative_to(args.debs)),
            "package": src["package"],
            "licence": src["licence"],
            "author": src["author"],
            "scale": scale,
            "size_hw": list(img.shape[:2]),
            "tiles_yxhw": boxes,
        })

    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    settings["focus_measure"] = "variance of skimage.filters.laplace of the luminance, per tile"
    (args.out / "settings.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    (args.out / "manifest.json").write_text(json.dumps({"settings": settings, "photos": manifest}, indent=1))
    size_mb = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file()) / 2**20
    print(f"corpus: {len(manifest)} photos, {total_kept}/{total_tiles} tiles kept, {size_mb:.1f} MB in {args.out}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, KeyError, subprocess.CalledProcessError) as err:
        sys.exit(f"prepare_corpus: error: {err}")
