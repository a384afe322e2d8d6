"""Make the public synthetic defocus benchmarks from scikit-image's bundled photos, with hidd.camera.

Each photo is resized (short side, anti-aliased) and centre-cropped to a square and quantised; then a
hidd.camera.Camera takes its picture. Two benchmarks:

--kind srgb-disk (default OUT data/benchmark; the regression set of earlier releases): an ideal disk blur
  acting on the sRGB values as given (tone curve 'none'), white Gaussian noise, 8 bits; every photo at each
  of --radii, and a depth-varying motorcycle whose radius follows its stereo disparity.
--kind camera (default OUT data/camera): what a camera does. Four conditions, 6 photos × 3 radius bands:
  (a) `linear`: a disk blur in linear light (sRGB tone curve), white noise 0.005 on the encoded values, 8 bits;
  (b) `lens`: lens PSFs (blades, rotation, spherical aberration of either sign, lateral colour, softening),
      Poisson–Gaussian noise, Bayer demosaicing, sRGB, JPEG q 75–95, radii 2–8 px;
  (c) `depth` (6 photos × 2): depth-varying blur through the same camera: the motorcycle's disparity, and
      tilted planes for the others, each with its own lens and focus (gathered, no occlusion);
  (d) `subject` (6 photos × 2): an in-focus subject (radius 0: the lens's softening only) before a background
      defocused 5–9 px, with occlusion (hidd.camera.optics.blur_layered), through a lens camera as in (b). The
      subject is a random blob: low-pass noise (Gaussian, σ = size / 10) plus a bump about a random centre,
      thresholded at 4× the resolution to cover 20–45 % of the frame, its largest connected region with its holes
      filled, averaged down (an edge about 1 px soft). (d) is drawn from its own generator, seeded apart, after
      (c), so (a)–(c) are what they were before (d) existed.

Writes to OUT:
  blurred/STEM.png, sharp/STEM.png   pairs matched by stem
  radius_maps/STEM.npy               the per-pixel radius of each depth-varying pair ((d): 0 on the subject,
                                     the background's radius r_b elsewhere, r_b (1 − α) along its soft edge)
  alphas/STEM.npy                    (d): the subject's coverage α (float32, 1 on the subject)
  meta.json, settings.yaml           per image: condition, tone curve, the TRUE lens PSF and noise; settings

With --examples DIR it instead writes a few small camera-made (condition b) pairs for the README and demos
into DIR/blurred + DIR/sharp, one subject pair as in (d) (with DIR/radius_maps/STEM.npy), plus OpenCV's real
defocused photo in DIR/real/text_defocus.png (no target).
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
from hidd.camera import Camera, Layers, disparity_to_radius, quantize  # noqa: E402
from hidd.camera.draws import lens_camera, linear_disk_camera, srgb_disk_camera  # noqa: E402
from hidd.camera.scenes import subject_mask, tilted_plane  # noqa: E402  (the (c) and (d) layouts)
from prepare_corpus import OPENCV_DIR, PACKAGES, ensure_unpacked, package_licence  # noqa: E402  (sibling script)

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "camera")
EXAMPLES = (("chelsea", 3.0), ("coffee", 3.5), ("astronaut", 2.5))  # (photo, lens radius)
RADIUS_BANDS = ((2.0, 3.5), (3.5, 5.5), (5.5, 8.0))  # camera benchmark: one radius drawn in each band
SUBJECT_BACKGROUND = (5.0, 9.0)  # (d): the background's defocus radius, px
SUBJECT_DRAWS = 2  # (d): subject scenes per photo
EXAMPLE_SUBJECT = "motorcycle"  # the examples' subject pair (condition d)
KINDS = ("srgb-disk", "camera")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kind", choices=KINDS, default="srgb-disk", help="which benchmark (see above)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default data/benchmark or data/camera)")
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
    args.out = args.out or Path("data/benchmark" if args.kind == "srgb-disk" else "data/camera")
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


def describe(camera: Camera, seed: int, **extra) -> dict:
    """The meta.json entry of one pair: the camera's true settings."""
    return {"tone_curve": camera.tone, "psf": {k: (list(v) if isinstance(v, tuple) else v)
                                               for k, v in vars(camera.psf).items()},
            "shot": camera.noise.shot, "read": camera.noise.read, "white_noise": camera.white_noise, "demosaic": camera.demosaic,
            "jpeg_quality": camera.jpeg_quality, "bits": camera.bits, "boundary": camera.boundary, "seed": seed,
            **extra}


def subject_pair(rng: random.Random, sharp: torch.Tensor, seed: int) -> tuple:
    """One subject scene ((d)) of a sharp crop: (blurred, radius map, α, camera, background radius)."""
    alpha = torch.from_numpy(subject_mask(rng, sharp.shape[-1])).float()
    background = round(rng.uniform(*SUBJECT_BACKGROUND), 2)
    camera = lens_camera(rng, background)
    layers = Layers.subject(alpha, background)
    y = camera.render(sharp, layers=layers, generator=torch.Generator().manual_seed(seed))
    return y, layers.radius_map(), alpha, camera, background


def subject_pairs(args, crops: dict, seed: int) -> dict:
    """Condition (d), from its own generator (seeded apart from (a)–(c)'s), noise seeds from seed + 1 on."""
    rng = random.Random(f"subject-{args.seed}")
    (args.out / "alphas").mkdir(parents=True, exist_ok=True)
    meta = {}
    for name in tqdm(PHOTOS, desc="subject pairs"):
        for view in range(SUBJECT_DRAWS):
            stem, seed = f"subject_{name}_{view}", seed + 1
            y, rmap, alpha, camera, background = subject_pair(rng, crops[name], seed)
            write_pair(args.out, stem, crops[name], y)
            np.save(args.out / "radius_maps" / f"{stem}.npy", rmap.numpy().astype(np.float32))
            np.save(args.out / "alphas" / f"{stem}.npy", alpha.numpy().astype(np.float32))
            meta[stem] = {"source": f"skimage.data.{name}", "condition": "subject", "radius": "depth-varying",
                          "radius_map": f"radius_maps/{stem}.npy", "alpha": f"alphas/{stem}.npy",
                          "max_radius": background, "layers": {"radii": [background, 0.0], "order": "far to near"},
                          "subject_share": round(float(alpha.mean()), 4), **describe(camera, seed)}
    return meta


def make_srgb_disk(args) -> dict:
    crops = {name: quantize(to_tensor(square(load(name), args.size)), args.bits) for name in PHOTOS}
    jobs = uniform_jobs(PHOTOS, [args.radii] * len(PHOTOS))
    meta = {}
    for i, (stem, name, r) in enumerate(tqdm(jobs, desc="uniform pairs")):
        camera = srgb_disk_camera(r, args.noise_sigma, args.bits)
        y = camera.render(crops[name], generator=torch.Generator().manual_seed(args.seed + i))
        write_pair(args.out, stem, crops[name], y)
        meta[stem] = {"source": f"skimage.data.{name}", "condition": "srgb-disk", "radius": r,
                      **describe(camera, args.seed + i)}

    # depth-varying pair: radius grows with the distance to the focus plane in disparity
    disp = square(motorcycle_disparity(), args.size)
    focus = float(np.percentile(disp, args.focus_percentile))
    rmap = disparity_to_radius(disp, focus, args.max_radius)
    seed = args.seed + len(jobs)
    camera = srgb_disk_camera(1.0, args.noise_sigma, args.bits)
    y = camera.render(crops["motorcycle"], radius_map=torch.from_numpy(rmap).float(), levels=args.levels,
                      generator=torch.Generator().manual_seed(seed))
    write_pair(args.out, "motorcycle_depth", crops["motorcycle"], y)
    np.save(args.out / "radius_maps" / "motorcycle_depth.npy", rmap.astype(np.float32))
    meta["motorcycle_depth"] = {
        "source": "skimage.data.stereo_motorcycle (left view + disparity)", "condition": "srgb-disk",
        "radius": "depth-varying", "radius_map": "radius_maps/motorcycle_depth.npy", "focus_disparity": focus,
        "max_radius": args.max_radius, "levels": args.levels, **describe(camera, seed)}
    return meta


def make_camera(args) -> dict:
    """The camera benchmark (see the module docstring); every draw comes from one seeded generator."""
    rng = random.Random(args.seed)
    crops = {name: quantize(to_tensor(square(load(name), args.size)), args.bits) for name in PHOTOS}
    meta, seed = {}, args.seed
    jobs = [(condition, name, band) for condition in ("linear", "lens") for name in PHOTOS
            for band in range(len(RADIUS_BANDS))]
    for condition, name, band in tqdm(jobs, desc="camera pairs"):
        radius = round(rng.uniform(*RADIUS_BANDS[band]), 2)
        camera = (lens_camera(rng, radius) if condition == "lens" else
                  linear_disk_camera(radius, args.noise_sigma, args.bits))
        stem, seed = f"{condition}_{name}_{band}", seed + 1
        write_pair(args.out, stem, crops[name], camera.render(crops[name], generator=torch.Generator().manual_seed(seed)))
        meta[stem] = {"source": f"skimage.data.{name}", "condition": condition, "radius": radius,
                      **describe(camera, seed)}
    disparity = torch.from_numpy(square(motorcycle_disparity(), args.size).copy())
    for name in tqdm(PHOTOS, desc="depth pairs"):
        for view in range(2):
            top = rng.uniform(3, 8)
            if name == "motorcycle":  # in focus on the motorcycle, then on the background
                rmap = disparity_to_radius(disparity, float(np.percentile(disparity.numpy(), [75, 20][view])), top)
            else:
                rmap = disparity_to_radius(tilted_plane(rng, args.size), rng.uniform(-0.7, 0.3), top)
            camera = lens_camera(rng, 1.0)
            stem, seed = f"depth_{name}_{view}", seed + 1
            y = camera.render(crops[name], radius_map=rmap.float(), levels=args.levels,
                              generator=torch.Generator().manual_seed(seed))
            write_pair(args.out, stem, crops[name], y)
            np.save(args.out / "radius_maps" / f"{stem}.npy", rmap.numpy().astype(np.float32))
            meta[stem] = {"source": f"skimage.data.{name}", "condition": "depth", "radius": "depth-varying",
                          "radius_map": f"radius_maps/{stem}.npy", "max_radius": top, "levels": args.levels,
                          **describe(camera, seed)}
    meta.update(subject_pairs(args, crops, seed))
    return meta


def example_subject(args, seed: int) -> dict:
    """The examples' subject pair (condition d) and its radius map, from a generator of its own."""
    out, stem = args.examples, f"subject_{EXAMPLE_SUBJECT}"
    sharp = quantize(to_tensor(square(load(EXAMPLE_SUBJECT), args.examples_size)), args.bits)
    y, rmap, alpha, camera, background = subject_pair(random.Random(f"subject-example-{args.seed}"), sharp, seed)
    write_pair(out, stem, sharp, y)
    (out / "radius_maps").mkdir(exist_ok=True)
    np.save(out / "radius_maps" / f"{stem}.npy", rmap.numpy().astype(np.float32))
    return {stem: {"source": f"skimage.data.{EXAMPLE_SUBJECT}", "condition": "subject", "radius": "depth-varying",
                   "radius_map": f"radius_maps/{stem}.npy", "max_radius": background,
                   "layers": {"radii": [background, 0.0], "order": "far to near"},
                   "subject_share": round(float(alpha.mean()), 4), **describe(camera, seed)}}


def make_examples(args) -> dict:
    out = args.examples
    names, radii = zip(*EXAMPLES)
    jobs = uniform_jobs(names, [[r] for r in radii])
    meta = {}
    rng = random.Random(args.seed)
    for i, (stem, name, r) in enumerate(tqdm(jobs, desc="examples")):
        sharp = quantize(to_tensor(square(load(name), args.examples_size)), args.bits)
        camera = lens_camera(rng, r)
        write_pair(out, stem, sharp, camera.render(sharp, generator=torch.Generator().manual_seed(args.seed + i)))
        meta[stem] = {"source": f"skimage.data.{name}", "condition": "lens", "radius": r,
                      **describe(camera, args.seed + i)}
    meta.update(example_subject(args, args.seed + len(jobs)))

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
    meta = (make_examples(args) if args.examples else
            make_srgb_disk(args) if args.kind == "srgb-disk" else make_camera(args))
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
