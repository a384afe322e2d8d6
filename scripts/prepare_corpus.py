"""Build the sharp-photo training corpus from photos shipped in Debian packages.

Sources (see docs/DATA.md): the real photos among the KDE Plasma wallpapers, the OpenCV sample photos
(opencv-doc) and the MATE nature backgrounds (mate-backgrounds). Each photo is used at several scales:
downscaled by every factor f of FACTORS for which its long side / f is at most MAX_LONG_SIDE (a 2560-px
wallpaper never at full size: softer pixels, JPEG artefacts) and its short side / f at least MIN_SHORT_SIDE.
Each scale is cut into overlapping tiles and only in-focus tiles are kept: the variance of the Laplacian of a
tile must reach both a fraction of that scale's own 90th percentile (rejects bokeh relative to the in-focus
subject) and an absolute floor (rejects flat or uniformly soft photos). Deterministic: there is no random step.
Augmentations that keep photos photos (flips, small scale changes, exposure) happen at training time
(hidd.data); the scales here are the large scale changes.

Writes to OUT (default data/corpus):
  photos/NAME.png   each photo at its finest scale
  tiles/NAME_fF_yY_xX.png   kept tiles of scale 1/F (what training reads by default)
  manifest.json     per photo: source, package, licence, and per scale: factor, size, kept tile boxes
  settings.yaml     the resolved settings and the counts (photos, tiles kept of tiles cut, per package)

--pack DIR copies just the source photos (and the licence files) into DIR in the layout --debs reads, about
17 MB: a folder that can travel to a machine with no package registry, where --debs DIR builds the same corpus.
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
MATE_DIR = "usr/share/backgrounds/mate/nature"
MATE_PHOTOS = (
    "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
    "TwoWings", "Wood", "YellowFlower",
)  # the rest of mate-backgrounds is graphics, not photos
PACKAGES = {"plasma": "plasma-workspace-wallpapers", "ocv": "opencv-doc", "mate": "mate-backgrounds"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--debs", type=Path, default=Path("/tmp/debs"),
                   help="folder with the unpacked packages in plasma/, ocv/ and mate/ (fetched with apt-get download "
                        "if missing), or a folder --pack wrote")
    p.add_argument("--out", type=Path, default=Path("data/corpus"), help="output folder")
    p.add_argument("--sources", nargs="+", choices=tuple(PACKAGES), default=list(PACKAGES),
                   help="which packages' photos to use")
    p.add_argument("--tile", type=int, default=160,
                   help="tile side in pixels (above the 128² training crop: room for scale jitter and shifts)")
    p.add_argument("--stride", type=int, default=64, help="tile stride in pixels")
    p.add_argument("--factors", type=float, nargs="+", default=[1, 1.5, 2, 3, 4],
                   help="downscale factors tried on every photo (each kept where the size limits allow)")
    p.add_argument("--max-long-side", type=int, default=1024,
                   help="a scale is used only if the photo's long side is at most this after downscaling")
    p.add_argument("--min-short-side", type=int, default=256,
                   help="a scale is used only if the photo's short side is at least this after downscaling")
    p.add_argument("--rel-threshold", type=float, default=0.25,
                   help="keep tiles whose focus measure >= this fraction of the scale's 90th percentile")
    p.add_argument("--abs-threshold", type=float, default=2e-3,
                   help="absolute floor on the focus measure (variance of the Laplacian, intensities in [0, 1])")
    p.add_argument("--overwrite", action="store_true", help="replace existing photos/ and tiles/ in OUT")
    p.add_argument("--smoke-set", type=Path, metavar="DIR",
                   help="also write the centre 128x128 of the middle kept tile of each Plasma photo's coarsest scale, "
                        "halved to 64x64, to DIR (like the committed examples/train that configs/tiny.yaml trains on, "
                        "which an earlier version of this script made from the 3x downscale)")
    p.add_argument("--pack", type=Path, metavar="DIR",
                   help="only copy the source photos and their licence files into DIR (the layout --debs reads) "
                        "and exit")
    args = p.parse_args(argv)
    for name in ("tile", "stride", "max_long_side", "min_short_side"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.factors) < 1:
        p.error("--factors must be >= 1 (the corpus never upsamples: that would soften the photos)")
    return args


def ensure_unpacked(debs: Path, keys=("plasma", "ocv")) -> None:
    """Download and unpack the packages `keys` into DEBS/KEY unless already there (no install); the default is what
    make_benchmark.py needs of them (it imports this)."""
    missing = {k: PACKAGES[k] for k in keys if not (debs / k / "usr").is_dir()}
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


def copyright_path(root: Path, package: str) -> Path:
    return root / "usr/share/doc" / package / "copyright"


def package_licence(root: Path, package: str) -> str:
    """The licence of the 'Files: *' stanza of the package's Debian copyright file."""
    text = copyright_path(root, package).read_text(encoding="utf-8")
    match = re.search(r"^Files: \*\n(?:.+\n)*?License: (.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def file_stanza(root: Path, package: str, file: str) -> tuple[str, str]:
    """(licence, copyright holders) of the copyright file's stanza that lists `file` (mate-backgrounds names its
    photos one by one); ('unknown', 'not stated') where no stanza does."""
    text = copyright_path(root, package).read_text(encoding="utf-8")
    for stanza in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:((?:.*\n?)(?:[ \t]+.*\n?)*)", stanza, re.MULTILINE)
        if files and file in files.group(1).split():
            licence = re.search(r"^License: (.+)$", stanza, re.MULTILINE)
            holders = re.search(r"^Copyright:((?:.*\n?)(?:[ \t]+.*\n?)*)", stanza, re.MULTILINE)
            names = [re.sub(r"\s*<.*?>|[´\"]", "", line).strip() for line in holders.group(1).splitlines()] \
                if holders else []
            return (licence.group(1).strip() if licence else "unknown"), "; ".join(n for n in names if n)
    return "unknown", "not stated"


def sources(debs: Path, keys=tuple(PACKAGES)) -> list[dict]:
    """One record per photo: name, path, package, licence, author, and the files that record them (`extra`)."""
    out = []
    if "plasma" in keys:
        plasma_pkg = package_licence(debs / "plasma", PACKAGES["plasma"])
        for name in PLASMA_PHOTOS:
            folder = debs / "plasma" / PLASMA_DIR / name
            meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))["KPlugin"]
            out.append({
                "name": f"plasma_{name}",
                "path": folder / "contents/images/2560x1600.jpg",
                "package": PACKAGES["plasma"],
                "licence": f"{meta.get('License', 'unknown')} (wallpaper metadata.json); package copyright: "
                           f"{plasma_pkg}",
                "author": ", ".join(a["Name"] for a in meta.get("Authors", [])),
                "extra": [folder / "metadata.json"],
            })
    if "ocv" in keys:
        ocv_pkg = package_licence(debs / "ocv", PACKAGES["ocv"])
        for file in OPENCV_PHOTOS:
            out.append({
                "name": f"opencv_{Path(file).stem}",
                "path": debs / "ocv" / OPENCV_DIR / file,
                "package": PACKAGES["ocv"],
                "licence": f"{ocv_pkg} (opencv-doc copyright, Files: *)",
                "author": "not stated (OpenCV sample data)",
                "extra": [],
            })
    if "mate" in keys:
        for name in MATE_PHOTOS:
            licence, author = file_stanza(debs / "mate", PACKAGES["mate"], f"nature/{name}.jpg")
            out.append({
                "name": f"mate_{name}",
                "path": debs / "mate" / MATE_DIR / f"{name}.jpg",
                "package": PACKAGES["mate"],
                "licence": f"{licence} (mate-backgrounds copyright, nature/{name}.jpg)",
                "author": author,
                "extra": [],
            })
    return out


def pack(debs: Path, dest: Path, keys=tuple(PACKAGES)) -> int:
    """Copy the source photos of `keys`, their metadata and the packages' copyright files into DEST, in the layout
    of DEBS; returns the bytes copied."""
    files = [copyright_path(debs / key, PACKAGES[key]) for key in keys]
    for src in sources(debs, keys):
        files += [src["path"], *src["extra"]]
    total = 0
    for file in files:
        target = dest / file.relative_to(debs)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
        total += file.stat().st_size
    return total


def load_rgb(path: Path) -> np.ndarray:
    """Float RGB image in [0, 1]; gray is replicated, alpha composited on white."""
    img = io.imread(path)
    if img.ndim == 2:
        img = color.gray2rgb(img)
    elif img.shape[-1] == 4:
        img = color.rgba2rgb(img)
    return img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)


def scales(shape: tuple[int, ...], factors, max_long_side: int, min_short_side: int) -> list[float]:
    """The downscale factors a photo of `shape` (H, W, ...) is used at, finest first."""
    short, long = sorted(shape[:2])
    return sorted(f for f in set(factors) if long / f <= max_long_side and short / f >= min_short_side)


def focus_measures(img: np.ndarray, tile: int, stride: int) -> np.ndarray:
    """Variance of the Laplacian of the luminance per tile, shape (rows, cols)."""
    # Laplacian of the whole photo so tile borders add no spurious edges
    lap = filters.laplace(color.rgb2gray(img))
    return view_as_windows(lap, (tile, tile), stride).var(axis=(-2, -1))


def in_focus_tiles(img: np.ndarray, args) -> tuple[list[list[int]], int]:
    """Boxes [y, x, h, w] of the kept tiles of one scale, and the number of tiles cut."""
    if min(img.shape[:2]) < args.tile:
        return [], 0
    fm = focus_measures(img, args.tile, args.stride)
    threshold = max(args.rel_threshold * np.percentile(fm, 90), args.abs_threshold)
    kept = zip(*np.nonzero(fm >= threshold))
    boxes = [[int(i) * args.stride, int(j) * args.stride, args.tile, args.tile] for i, j in kept]
    return boxes, int(fm.size)


def factor_tag(factor: float) -> str:
    return f"{factor:g}".replace(".", "p")  # 1.5 -> 1p5: one dot per file name


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.pack:
        ensure_unpacked(args.debs, args.sources)
        size = pack(args.debs, args.pack, args.sources)
        print(f"prepare_corpus: packed {len(sources(args.debs, args.sources))} photos, {size / 2**20:.1f} MiB, "
              f"into {args.pack} (build there with --debs {args.pack})")
        return
    photos_dir, tiles_dir = args.out / "photos", args.out / "tiles"
    for d in (photos_dir, tiles_dir):
        if d.exists() and any(d.iterdir()):
            if not args.overwrite:
                raise ValueError(f"{d} is not empty (pass --overwrite to replace it)")
            shutil.rmtree(d)
        d.mkdir(parents=True, exist_ok=True)
    ensure_unpacked(args.debs, args.sources)

    manifest, counts = [], {}
    for src in tqdm(sources(args.debs, args.sources), desc="photos"):
        full = load_rgb(src["path"])
        used, kept_here, cut_here = [], 0, 0
        for factor in scales(full.shape, args.factors, args.max_long_side, args.min_short_side):
            img = full if factor == 1 else np.clip(
                transform.rescale(full, 1 / factor, anti_aliasing=True, channel_axis=-1), 0, 1)
            img8 = img_as_ubyte(img)
            if not used:
                io.imsave(photos_dir / f"{src['name']}.png", img8, check_contrast=False)
            boxes, cut = in_focus_tiles(img, args)
            for y, x, h, w in boxes:
                io.imsave(tiles_dir / f"{src['name']}_f{factor_tag(factor)}_y{y:04d}_x{x:04d}.png",
                          img8[y:y + h, x:x + w], check_contrast=False)
            used.append({"factor": factor, "size_hw": list(img.shape[:2]), "tiles_cut": cut, "tiles_yxhw": boxes})
            kept_here, cut_here = kept_here + len(boxes), cut_here + cut
        if args.smoke_set and src["package"] == PACKAGES["plasma"] and used and used[-1]["tiles_yxhw"]:
            coarsest = used[-1]
            img = transform.rescale(full, 1 / coarsest["factor"], anti_aliasing=True, channel_axis=-1)
            y, x, h, w = coarsest["tiles_yxhw"][len(coarsest["tiles_yxhw"]) // 2]
            y, x, h, w = y + max(h - 128, 0) // 2, x + max(w - 128, 0) // 2, min(h, 128), min(w, 128)  # its centre
            half = transform.rescale(img[y:y + h, x:x + w], 0.5, anti_aliasing=True, channel_axis=-1)
            args.smoke_set.mkdir(parents=True, exist_ok=True)
            io.imsave(args.smoke_set / f"{src['name']}.png", img_as_ubyte(np.clip(half, 0, 1)), check_contrast=False)
        factors = ", ".join(f"{u['factor']:g}" for u in used) or "none (too small)"
        tqdm.write(f"{src['name']}: kept {kept_here}/{cut_here} tiles at downscale {factors}")
        package = counts.setdefault(src["package"], {"photos": 0, "photos_with_tiles": 0, "tiles_kept": 0,
                                                     "tiles_cut": 0})
        package["photos"] += 1
        package["photos_with_tiles"] += kept_here > 0
        package["tiles_kept"] += kept_here
        package["tiles_cut"] += cut_here
        manifest.append({
            "name": src["name"],
            "source": str(src["path"].relative_to(args.debs)),
            "package": src["package"],
            "licence": src["licence"],
            "author": src["author"],
            "scales": used,
        })

    totals = {key: sum(c[key] for c in counts.values()) for key in ("photos", "photos_with_tiles", "tiles_kept",
                                                                     "tiles_cut")}
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    settings["focus_measure"] = "variance of skimage.filters.laplace of the luminance, per tile"
    settings["counts"] = {"total": totals, **counts}
    (args.out / "settings.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    (args.out / "manifest.json").write_text(json.dumps({"settings": settings, "photos": manifest}, indent=1))
    size_mb = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file()) / 2**20
    print(f"corpus: {totals['photos']} photos ({totals['photos_with_tiles']} with tiles), "
          f"{totals['tiles_kept']}/{totals['tiles_cut']} tiles kept, {size_mb:.1f} MB in {args.out}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, KeyError, subprocess.CalledProcessError) as err:
        sys.exit(f"prepare_corpus: error: {err}")
