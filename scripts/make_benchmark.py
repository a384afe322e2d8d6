"""Make the public synthetic defocus benchmark from scikit-image's bundled photos.

Each photo is resized (short side, anti-aliased) and centre-cropped to a square, then
blurred with a uniform disk PSF at each radius, given Gaussian noise and quantised to
8 bits (hidd.degrade.defocus). The motorcycle also gets a depth-varying version whose
radius follows its ground-truth stereo disparity, in focus on the motorcycle.

Writes to OUT (default data/benchmark):
  blurred/STEM.png, sharp/STEM.png   pairs matched by stem, STEM = NAME_rR or motorcycle_depth
  radius_maps/motorcycle_depth.npy   the per-pixel disk radius of the depth-varying pair
  meta.json, settings.yaml           per-image radius and PSF parameters; resolved settings

With --examples DIR it instead writes a few small pairs for the README and demos into
DIR/blurred + DIR/sharp, plus OpenCV's real defocused photo in DIR/real/text_defocus.png (no target).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from scipy import ndimage
from skimage import color, data, io, transform
from skimage.util import img_as_ubyte
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from hidd.degrade import add_noise, blur_depth_varying, defocus, disparity_to_radius, quantize  # noqa: E402
from prepare_corpus import OPENCV_DIR, PACKAGES, ensure_unpacked, package_licence  # noqa: E402  (sibling script)

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "camera")
EXAMPLES = (("chelsea", 3.0), ("coffee", 3.5), ("astronaut", 2.5))  # (photo, disk radius)
PSF = {"type": "disk", "blades": 0, "supersample": 8, "boundary": "reflect"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/benchmark"), help="output folder")
    p.add_argument("--size", type=int, default=256, help="side of the square crops")
    p.add_argument("--radii", type=float, nargs="+", default=[2.0, 3.5, 5.0], help="uniform disk radii in pixels")
    p.add_argument("--noise-sigma", type=float, default=0.005, help="Gaussian noise std on the [0, 1] scale")
    p.add_argument("--bits", type=int, default=8, help="quantisation bit depth")
    p.add_argument("--seed", type=int, default=0, help="noise seed (image i uses seed + i)")
    p.add_argument("--max-radius", type=float, default=5.0, help="largest radius of the depth-varying motorcycle")
    p.add_argument("--focus-percentile", type=float, default=75.0,
                   help="focus plane at this percentile of the crop's disparity (75: on the motorcycle)")
    p.add_argument("--levels", type=int, default=11, help="radius layers of the depth-varying blur")
    p.add_argument("--examples", type=Path, default=None, help="write the small examples to this folder instead")
    p.add_argument("--examples-size", type=int, default=192, help="side of the example crops")
    p.add_argument("--max-real-side", type=int, default=512, help="downscale the real defocused photo to this long side")
    p.add_argument("--debs", type=Path, default=Path("/tmp/debs"), help="unpacked packages (as in prepare_corpus.py)")
    args = p.parse_args(argv)
    if args.size < 32 or args.examples_size < 32 or args.max_real_side < 32:
        raise ValueError("sizes must be >= 32 pixels")
    if min(args.radii) < 0 or args.max_radius < 0 or args.noise_sigma < 0:
        raise ValueError("radii and noise must be non-negative")
    if not 0 <= args.focus_percentile <= 100 or args.levels < 2 or not 1 <= args.bits <= 16:
        raise ValueError("need 0 <= --focus-percentile <= 100, --levels >= 2, 1 <= --bits <= 16")
    return args


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load(name: str) -> np.ndarray:
    """A bundled skimage photo as float RGB in [0, 1] (gray replicated)."""
    img = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    return color.gray2rgb(img) / 255.0 if img.ndim == 2 else img / 255.0


def motorcycle_disparity() -> np.ndarray:
    """Left-view disparity with occluded (non-finite) pixels filled from the nearest valid one."""
    disp = data.stereo_motorcycle()[2]
    idx = ndimage.distance_transform_edt(~np.isfinite(disp), return_distances=False, return_indices=True)
    return disp[tuple(idx)]


def square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` (anti-aliased) and centre-crop to size x size."""
    h, w = img.shape[:2]
    s = size / min(h, w)
    shape = (max(size, round(h * s)), max(size, round(w * s))) + img.shape[2:]
    img = transform.resize(img, shape, anti_aliasing=True)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return img[top : top + size, left : left + size]


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]


def save(path: Path, img) -> None:
    """Save a float image in [0, 1] (array or (1, C, H, W) tensor) as an 8-bit PNG."""
    if isinstance(img, torch.Tensor):
        img = img[0].permute(1, 2, 0).numpy()
    io.imsave(path, img_as_ubyte(np.clip(img, 0, 1)), check_contrast=False)


def write_pair(out: Path, stem: str, sharp: torch.Tensor, blurred: torch.Tensor) -> None:
    save(out / "sharp" / f"{stem}.png", sharp)
    save(out / "blurred" / f"{stem}.png", blurred)


def uniform_jobs(photos, radii):
    """(stem, photo name, radius) for every uniform pair."""
    return [(f"{name}_r{r:g}", name, r) for name, rs in zip(photos, radii) for r in rs]


def make_benchmark(args) -> dict:
    crops = {name: quantize(to_tensor(square(load(name), args.size)), args.bits) for name in PHOTOS}
    jobs = uniform_jobs(PHOTOS, [args.radii] * len(PHOTOS))
    meta = {}
    for i, (stem, name, r) in enumerate(tqdm(jobs, desc="uniform pairs")):
        gen = torch.Generator().manual_seed(args.seed + i)
        y = defocus(crops[name], r, noise_sigma=args.noise_sigma, bits=args.bits, generator=gen)
        write_pair(args.out, stem, crops[name], y)
        meta[stem] = {"source": f"skimage.data.{name}", "radius": r, "psf": PSF,
                      "noise_sigma": args.noise_sigma, "bits": args.bits, "seed": args.seed + i}

    # depth-varying pair: radius grows with the distance to the focus plane in disparity
    disp = square(motorcycle_disparity(), args.size)
    focus = float(np.percentile(disp, args.focus_percentile))
    rmap = disparity_to_radius(disp, focus, args.max_radius)
    seed = args.seed + len(jobs)
    y = blur_depth_varying(crops["motorcycle"], torch.from_numpy(rmap), levels=args.levels)
    y = quantize(add_noise(y, args.noise_sigma, torch.Generator().manual_seed(seed)), args.bits)
    write_pair(args.out, "motorcycle_depth", crops["motorcycle"], y)
    np.save(args.out / "radius_maps" / "motorcycle_depth.npy", rmap.astype(np.float32))
    meta["motorcycle_depth"] = {
        "source": "skimage.data.stereo_motorcycle (left view + disparity)", "radius": "depth-varying",
        "psf": PSF, "radius_map": "radius_maps/motorcycle_depth.npy", "focus_disparity": focus,
        "max_radius": args.max_radius, "levels": args.levels, "noise_sigma": args.noise_sigma,
        "bits": args.bits, "seed": seed,
    }
    return meta


def make_examples(args) -> dict:
    out = args.examples
    names, radii = zip(*EXAMPLES)
    jobs = uniform_jobs(names, [[r] for r in radii])
    meta = {}
    for i, (stem, name, r) in enumerate(tqdm(jobs, desc="examples")):
        sharp = quantize(to_tensor(square(load(name), args.examples_size)), args.bits)
        gen = torch.Generator().manual_seed(args.seed + i)
        write_pair(out, stem, sharp, defocus(sharp, r, noise_sigma=args.noise_sigma, bits=args.bits, generator=gen))
        meta[stem] = {"source": f"skimage.data.{name}", "radius": r, "psf": PSF,
                      "noise_sigma": args.noise_sigma, "bits": args.bits, "seed": args.seed + i}

    ensure_unpacked(args.debs)
    real = args.debs / "ocv" / OPENCV_DIR / "text_defocus.jpg"
    img = io.imread(real)
    (out / "real").mkdir(parents=True, exist_ok=True)
    if max(img.shape[:2]) > args.max_real_side:
        img = transform.rescale(img, args.max_real_side / max(img.shape[:2]), anti_aliasing=True, channel_axis=-1)
        save(out / "real" / "text_defocus.png", img)
        stem_file = "text_defocus.png"
    else:
        shutil.copy(real, out / "real" / real.name)
        stem_file = real.name
    meta["text_defocus"] = {"source": f"opencv-doc {OPENCV_DIR}/text_defocus.jpg", "file": f"real/{stem_file}",
                            "radius": "unknown (real defocus, no sharp target)",
                            "licence": package_licence(args.debs / "ocv", PACKAGES["ocv"])}
    return meta


def main(argv=None) -> None:
    args = parse_args(argv)
    seed_everything(args.seed)
    out = args.examples or args.out
    for sub in ("blurred", "sharp") + (() if args.examples else ("radius_maps",)):
        (out / sub).mkdir(parents=True, exist_ok=True)
    meta = make_examples(args) if args.examples else make_benchmark(args)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    (out / "settings.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    (out / "meta.json").write_text(json.dumps({"settings": settings, "images": meta}, indent=1))
    n_pairs = sum(1 for m in meta.values() if "psf" in m)
    print(f"{'examples' if args.examples else 'benchmark'}: {n_pairs} pairs, {len(meta) - n_pairs} real photo(s) in {out}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, subprocess.CalledProcessError) as err:
        sys.exit(f"make_benchmark: error: {err}")
