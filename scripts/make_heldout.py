"""Defocused photos from a second, independent camera simulator: a check of what carries over.

Every other benchmark here is made by hidd.camera, the very model that `fast` inverts, so a gain there
can be a gain on the model rather than on photos. This script is a deliberately separate camera written
without hidd (numpy, scipy and PIL only), with choices hidd.camera does not make: apertures drawn at 8×
supersampling, polygons blended with their circumscribed disk, white balance before a Bayer mosaic,
bilinear demosaicing, optional in-camera sharpening and PIL's JPEG with 4:2:0 chroma. It is a
development check, not a second model to keep in step: do not import it from hidd. Per photo and draw
(--draws per photo, named NAME_dK when more than one; each draw seeded by the set's seed, the photo's
name and, with --draws above 1, K, so a set is remade byte for byte by the same command):

  crop     short side area-downsampled to --short (0: as it is), the --crop² window of most gradient energy;
  optics   decoded to linear light (sRGB; gamma22: a 2.2 power); per channel an aperture (a disk, or a 5–9-blade polygon, rotated, blended
           with its circumscribed disk at a weight of 0–0.6) weighted by 1 + a ρ², a ∈ [−0.5, 1] (a < 0: soft
           edge, a > 0: bright rim), radius r (1 ± d) with a per-channel scale |d| ≤ 0.08 for red and blue,
           then a diffraction Gaussian of 0.3–0.8 px; convolved with reflected borders;
  sensor   divided by white-balance gains (R 1.6–2.3, B 1.3–1.9), an RGGB mosaic with Poisson–Gaussian
           noise (variance shot · x + read²; shot 3e-5–5e-4, read 8e-4–3e-3; --high-iso: 1e-3–3e-3 and
           3e-3–6e-3), bilinear demosaicing, the gains back;
  output   a tone curve (sRGB; gamma22: a 2.2 power; scurve: sRGB then v − 0.3 sin(2πv)/2π), with --sharpen
           in-camera sharpening (an unsharp mask), 8 bits, and JPEG at q drawn from --jpeg (default 80–95), read back.

The sharp reference is the crop decoded and re-encoded by --tone, 8-bit: the crop itself for srgb and gamma22,
whose two directions are inverse; for scurve, the crop through the S-curve, as the photo is. Radii are uniform in
[--rmin, --rmax]. --scene says how the radius varies over the frame (the scene's depth):

  uniform  one radius r for the whole crop (the default; condition "heldout");
  tilt     a plane tilted along a random direction θ: with t ∈ [0, 1] the position across the frame along θ and
           t_f ~ U(0, 0.6) the focus line, r(p) = r_max |t(p) − t_f| / max |t − t_f| (a plane's inverse depth is
           affine in the image, so its thin-lens radius is |affine|); part of the frame is sharp. Rendered by
           scattering: each pixel's light spreads by its own aperture, y = Σ_i A(r_i) ∗ (w_i x), w_i the linear
           weights of the radius layers r_i (0.5 px apart) at each pixel (condition "depth");
  subject  an in-focus subject before a background at r_max: a star-shaped blob (radius R (1 + Σ_k a_k cos(kθ +
           φ_k)), k = 2…5, 20–45 % of the frame before the frame cuts it), drawn at 4× supersampling, so its
           edge α is about 1 px soft. The background behind the subject is the nearest pure-background pixel's
           colour (α = 0); with G the diffraction Gaussian and A the aperture,
           y = G ∗ (α x) + (1 − G ∗ α) · G ∗ A ∗ x_background (condition "subject").
  Both save the radius map (radius_maps/NAME.npy, float32; the subject's: r_max (1 − α)) for bench_quality.py's
  in-focus and defocused PSNR.

Writes the folder layout of scripts/make_benchmark.py (blurred/, sharp/, radius_maps/, meta.json with every draw's
parameters), so that

  python scripts/make_heldout.py --photos /tmp/mate/usr/share/backgrounds/mate/nature --out data/heldout/set20 --seed 20
  python scripts/bench_quality.py --benchmark data/heldout/set20 --methods blurred fast

scores `fast` on it (the oracles there get an ideal disk: this camera's true PSF is not a LensPSF).
The photos: Debian's mate-backgrounds nature photos (docs/BENCHMARKS.md), never used for training.
"""
from __future__ import annotations

import argparse
import io
import json
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage, signal
from tqdm import tqdm

SUPERSAMPLE = 8
EXTENSIONS = (".jpg", ".jpeg", ".png")
SCENES = ("uniform", "tilt", "subject")
CONDITIONS = {"uniform": "heldout", "tilt": "depth", "subject": "subject"}  # meta.json's condition of each scene
LAYER_STEP = 0.5  # px between the radius layers of the tilted plane
POINT = 0.25  # apertures below this radius are a point (a 1×1 kernel)


def srgb_decode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def gamma22_decode(v: np.ndarray) -> np.ndarray:
    return v ** 2.2


def gamma22_encode(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 1) ** (1 / 2.2)


def scurve_encode(x: np.ndarray) -> np.ndarray:
    """sRGB, then a camera-like contrast S-curve (slope 0.7 at black and white, 1.3 at mid-grey)."""
    v = srgb_encode(x)
    return v - 0.3 * np.sin(2 * np.pi * v) / (2 * np.pi)


TONES = {"srgb": (srgb_decode, srgb_encode), "gamma22": (gamma22_decode, gamma22_encode),
         "scurve": (srgb_decode, scurve_encode)}  # (decode, encode)


def aperture(radius: float, blades: int, rotation: float, roundness: float, aberration: float) -> np.ndarray:
    """A normalised 2-D aperture of `radius` px (0 blades: a disk; else a polygon blended with its circumscribed
    disk at weight `roundness`), weighted by 1 + aberration · ρ², drawn at SUPERSAMPLE× and area-averaged down."""
    half = int(np.ceil(radius)) + 1
    n = (2 * half + 1) * SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / SUPERSAMPLE - (half + 0.5)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    rho = np.hypot(yy, xx) / radius
    disk = (rho <= 1).astype(np.float64)
    if blades:
        angle = np.arctan2(yy, xx) - rotation
        sector = np.pi / blades
        # distance to the polygon's edge along the ray, relative to its circumradius
        edge = np.cos(sector) / np.cos(np.mod(angle, 2 * sector) - sector)
        polygon = (rho <= edge).astype(np.float64)
        shape = roundness * disk + (1 - roundness) * polygon
    else:
        shape = disk
    shape = shape * np.clip(1 + aberration * rho ** 2, 0, None)
    kernel = shape.reshape(2 * half + 1, SUPERSAMPLE, 2 * half + 1, SUPERSAMPLE).mean(axis=(1, 3))
    return kernel / kernel.sum()


def blur_channel(channel: np.ndarray, kernel: np.ndarray, diffraction: float) -> np.ndarray:
    """One channel convolved with the aperture and a diffraction Gaussian, borders reflected."""
    pad = kernel.shape[0] // 2 + int(4 * diffraction) + 2
    padded = np.pad(channel, pad, mode="symmetric")
    out = signal.fftconvolve(padded, kernel, mode="same")
    out = ndimage.gaussian_filter(out, diffraction, mode="reflect")
    return out[pad:-pad, pad:-pad]


def demosaic_bilinear(mosaic: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) from an RGGB mosaic (H, W) by bilinear interpolation of each colour's samples."""
    h, w = mosaic.shape
    masks = np.zeros((3, h, w))
    masks[0, 0::2, 0::2] = 1
    masks[1, 0::2, 1::2] = masks[1, 1::2, 0::2] = 1
    masks[2, 1::2, 1::2] = 1
    k_rb = np.array([[0.25, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 0.25]])
    k_g = np.array([[0, 0.25, 0], [0.25, 1, 0.25], [0, 0.25, 0]])
    out = [ndimage.convolve(mosaic * m, k, mode="mirror") for m, k in zip(masks, (k_rb, k_g, k_rb))]
    return np.stack(out, axis=-1)


def best_crop(image: np.ndarray, crop: int) -> np.ndarray:
    """The crop×crop window (on a grid of crop/8 px) with the most gradient energy: defocus needs detail to show."""
    grey = image.mean(axis=-1)
    energy = np.hypot(*np.gradient(grey))
    h, w = grey.shape
    step = max(8, crop // 8)
    best, where = -1.0, (0, 0)
    for top in range(0, h - crop + 1, step):
        for left in range(0, w - crop + 1, step):
            e = energy[top:top + crop, left:left + crop].sum()
            if e > best:
                best, where = e, (top, left)
    top, left = where
    return image[top:top + crop, left:left + crop]


def load_photo(path: Path, short: int) -> np.ndarray:
    """An RGB photo in [0, 1], its short side area-downsampled to `short` (0: as it is)."""
    try:
        photo = Image.open(path).convert("RGB")
    except OSError as error:
        raise SystemExit(f"make_heldout: {path}: cannot read it as an image ({error})") from None
    if short:
        scale = short / min(photo.size)
        if scale < 1:
            photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BOX)
    return np.asarray(photo, dtype=np.float64) / 255


def draw_camera(rng: np.random.Generator, radius: float, args) -> dict:
    """One draw of the lens, sensor and output settings (the order of the draws keeps old sets reproducible)."""
    return {"radius": radius, "blades": int(rng.choice([0, 5, 6, 7, 8, 9])), "rotation": float(rng.uniform(0, np.pi)),
            "roundness": float(rng.uniform(0, 0.6)), "aberration": float(rng.uniform(-0.5, 1.0)),
            "colour_scale": float(rng.uniform(-0.08, 0.08)), "diffraction": float(rng.uniform(0.3, 0.8)),
            "wb": [float(rng.uniform(1.6, 2.3)), 1.0, float(rng.uniform(1.3, 1.9))],
            "shot": float(rng.uniform(*((1e-3, 3e-3) if args.high_iso else (3e-5, 5e-4)))),
            "read": float(rng.uniform(*((3e-3, 6e-3) if args.high_iso else (8e-4, 3e-3)))),
            "jpeg": int(rng.integers(args.jpeg[0], args.jpeg[1] + 1))}


def optics(linear: np.ndarray, draw: dict, radius: float | None = None) -> np.ndarray:
    """Linear light (H, W, 3) through the drawn lens: a per-channel aperture (lateral colour), then diffraction;
    at the draw's radius, or at `radius` (below POINT px the aperture is a point)."""
    radius = draw["radius"] if radius is None else radius
    scales = (1 + draw["colour_scale"], 1.0, 1 - draw["colour_scale"])

    def kernel(r: float) -> np.ndarray:
        if r < POINT:
            return np.ones((1, 1))
        return aperture(r, draw["blades"], draw["rotation"], draw["roundness"], draw["aberration"])

    return np.stack([blur_channel(linear[..., c], kernel(radius * s), draw["diffraction"])
                     for c, s in enumerate(scales)], axis=-1)


def draw_scene(rng: np.random.Generator, scene: str) -> dict:
    """The depth layout of a tilt or subject scene (drawn after the camera, so uniform sets keep their draws)."""
    if scene == "tilt":
        return {"angle": float(rng.uniform(0, 2 * np.pi)), "focus": float(rng.uniform(0, 0.6))}
    amplitudes = [float(rng.uniform(0, 0.25 / k)) for k in range(2, 6)]
    return {"centre": [float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.35, 0.65))],
            "fraction": float(rng.uniform(0.2, 0.45)), "amplitudes": amplitudes,
            "phases": [float(rng.uniform(0, 2 * np.pi)) for _ in amplitudes]}


def tilt_radius(shape: tuple[int, int], scene: dict, top: float) -> np.ndarray:
    """Radius map (H, W) of a tilted plane: 0 on the focus line, `top` at the frame's farthest point from it."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    t = np.cos(scene["angle"]) * xx + np.sin(scene["angle"]) * yy
    t = (t - t.min()) / (t.max() - t.min())
    distance = np.abs(t - scene["focus"])
    return top * distance / distance.max()


def subject_alpha(shape: tuple[int, int], scene: dict, supersample: int = 4) -> np.ndarray:
    """The subject's coverage α (H, W) in [0, 1]: a star-shaped blob, each pixel's share of its sub-samples inside."""
    h, w = shape
    k = np.arange(2, 2 + len(scene["amplitudes"]))
    amplitudes, phases = np.array(scene["amplitudes"]), np.array(scene["phases"])
    base = np.sqrt(scene["fraction"] * h * w / (np.pi * (1 + 0.5 * (amplitudes ** 2).sum())))
    yy, xx = np.mgrid[0:h * supersample, 0:w * supersample].astype(np.float64)
    yy, xx = (yy + 0.5) / supersample - scene["centre"][0] * h, (xx + 0.5) / supersample - scene["centre"][1] * w
    theta = np.arctan2(yy, xx)
    edge = base * (1 + (amplitudes * np.cos(k * theta[..., None] + phases)).sum(-1))
    inside = (np.hypot(yy, xx) <= edge).astype(np.float64)
    return inside.reshape(h, supersample, w, supersample).mean(axis=(1, 3))


def tilt_optics(linear: np.ndarray, rmap: np.ndarray, draw: dict) -> np.ndarray:
    """Scattered defocus: each radius layer's share of the light (linear weights in r) spread by its aperture."""
    top = float(rmap.max())
    radii = np.linspace(0, top, int(np.ceil(top / LAYER_STEP)) + 1)
    step = radii[1] - radii[0] if len(radii) > 1 else 1.0
    out = np.zeros_like(linear)
    for r in radii:
        weight = np.clip(1 - np.abs(rmap - r) / step, 0, None)
        if weight.any():
            out += optics(linear * weight[..., None], draw, float(r))
    return out


def subject_optics(linear: np.ndarray, alpha: np.ndarray, draw: dict) -> np.ndarray:
    """An in-focus subject (coverage α) over a background defocused at the draw's radius, with occlusion."""
    hidden = alpha > 0
    nearest = ndimage.distance_transform_edt(hidden, return_distances=False, return_indices=True)
    background = optics(linear[nearest[0], nearest[1]], draw)  # the background continued behind the subject
    front = np.stack([ndimage.gaussian_filter(alpha * linear[..., c], draw["diffraction"], mode="reflect")
                      for c in range(3)], axis=-1)
    cover = ndimage.gaussian_filter(alpha, draw["diffraction"], mode="reflect")[..., None]
    return front + (1 - cover) * background


def sensor(linear: np.ndarray, draw: dict, rng: np.random.Generator) -> np.ndarray:
    """White balance undone, an RGGB mosaic with Poisson–Gaussian noise, bilinear demosaicing, the gains back."""
    raw = np.clip(linear, 0, None) / np.array(draw["wb"])
    mosaic = np.zeros(raw.shape[:2])
    mosaic[0::2, 0::2] = raw[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = raw[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = raw[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = raw[1::2, 1::2, 2]
    mosaic = mosaic + rng.normal(size=mosaic.shape) * np.sqrt(draw["shot"] * mosaic + draw["read"] ** 2)
    return demosaic_bilinear(mosaic) * np.array(draw["wb"])


def output(linear: np.ndarray, draw: dict, rng: np.random.Generator, args) -> np.ndarray:
    """The tone curve, in-camera sharpening (--sharpen), 8 bits and JPEG, read back (H, W, 3) uint8."""
    toned = TONES[args.tone][1](linear)
    if args.sharpen:  # an unsharp mask of the tone-mapped image, as cameras apply before JPEG
        draw["sharpen"] = float(rng.uniform(0.5, 1.0) * args.sharpen)
        toned = toned + draw["sharpen"] * (toned - ndimage.gaussian_filter(toned, (1.0, 1.0, 0)))
    encoded = np.round(np.clip(toned, 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(encoded).save(buffer, format="JPEG", quality=draw["jpeg"], subsampling=2)
    return np.asarray(Image.open(buffer).convert("RGB"))


def render(sharp: np.ndarray, rng: np.random.Generator, radius: float, args) -> tuple[np.ndarray, dict]:
    """The defocused photo (H, W, 3) uint8 of a sharp sRGB crop, and the draw that made it."""
    return render_scene(sharp, rng, radius, args, "uniform")[:2]


def render_scene(sharp: np.ndarray, rng: np.random.Generator, radius: float, args,
                 scene: str) -> tuple[np.ndarray, dict, np.ndarray | None]:
    """`render` for any --scene: also the radius map (None for a uniform scene; `radius` is the tilt's or the
    background's largest radius)."""
    draw = draw_camera(rng, radius, args)
    linear = TONES[args.tone][0](sharp)
    rmap = None
    if scene == "uniform":
        blurred = optics(linear, draw)
    else:
        draw["scene"] = draw_scene(rng, scene)
        if scene == "tilt":
            rmap = tilt_radius(sharp.shape[:2], draw["scene"], radius)
            blurred = tilt_optics(linear, rmap, draw)
        else:
            alpha = subject_alpha(sharp.shape[:2], draw["scene"])
            draw["scene"]["covered"] = round(float(alpha.mean()), 4)  # the share of the frame the subject covers
            rmap = radius * (1 - alpha)
            blurred = subject_optics(linear, alpha, draw)
    return output(sensor(blurred, draw, rng), draw, rng, args), draw, rmap


def reference(sharp: np.ndarray, args) -> np.ndarray:
    """The sharp crop through the same tone curve, 8-bit (the crop itself for srgb and gamma22)."""
    decode, encode = TONES[args.tone]
    return np.round(np.clip(encode(decode(sharp)), 0, 1) * 255).astype(np.uint8)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photos", type=Path, required=True, help="folder of sharp photos (jpg/png)")
    p.add_argument("--out", type=Path, required=True, help="output folder (blurred/, sharp/, meta.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rmin", type=float, default=1.5, help="smallest defocus radius, px")
    p.add_argument("--rmax", type=float, default=7.0, help="largest defocus radius, px")
    p.add_argument("--crop", type=int, default=256, help="side of the square crop")
    p.add_argument("--short", type=int, default=512, help="downsample the short side to this first (0: do not)")
    p.add_argument("--names", nargs="+", help="only these photos (file stems)")
    p.add_argument("--draws", type=int, default=1, help="draws per photo (named NAME_dK when more than one)")
    p.add_argument("--tone", choices=sorted(TONES), default="srgb")
    p.add_argument("--high-iso", action="store_true", help="strong sensor noise")
    p.add_argument("--sharpen", type=float, default=0.0,
                   help="in-camera sharpening: an unsharp mask (σ 1 px) of amount 0.5–1 × this, after the tone curve")
    p.add_argument("--jpeg", type=int, nargs=2, default=(80, 95), metavar=("QMIN", "QMAX"))
    p.add_argument("--scene", choices=SCENES, default="uniform",
                   help="uniform: one radius; tilt: a tilted plane, sharp somewhere; subject: an in-focus blob before "
                        "a background at the drawn radius, with occlusion (the radius map goes to radius_maps/)")
    args = p.parse_args(argv)
    if not 0 < args.rmin <= args.rmax:
        p.error(f"need 0 < --rmin <= --rmax, got {args.rmin} and {args.rmax}")
    if not 1 <= args.jpeg[0] <= args.jpeg[1] <= 100:
        p.error(f"need 1 <= QMIN <= QMAX <= 100 for --jpeg, got {args.jpeg[0]} {args.jpeg[1]}")
    if args.draws < 1 or args.crop < 16:
        p.error("need --draws >= 1 and --crop >= 16")
    if args.short and args.short < args.crop:
        p.error(f"--short {args.short} is smaller than --crop {args.crop}")
    return args


def sharp_crops(args) -> dict[Path, np.ndarray]:
    """Every photo's crop, read before anything is written: a bad photo stops the run with nothing half-made."""
    if not args.photos.is_dir():
        raise SystemExit(f"make_heldout: {args.photos}: not a folder")
    paths = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in EXTENSIONS)
    if args.names:
        paths = [p for p in paths if p.stem in args.names]
    if not paths:
        raise SystemExit(f"make_heldout: {args.photos}: no photos (jpg/png) here")
    stems = [p.stem for p in paths]
    twins = sorted({stem for stem in stems if stems.count(stem) > 1})
    if twins:
        raise SystemExit(f"make_heldout: {args.photos}: two photos named {twins[0]} (the outputs would collide)")
    crops = {}
    for path in paths:
        photo = load_photo(path, args.short)
        if min(photo.shape[:2]) < args.crop:
            raise SystemExit(f"make_heldout: {path}: smaller than the {args.crop}² crop")
        crops[path] = best_crop(photo, args.crop)
    return crops


def main(argv=None) -> None:
    args = parse_args(argv)
    crops = sharp_crops(args)
    (args.out / "blurred").mkdir(parents=True, exist_ok=True)
    (args.out / "sharp").mkdir(parents=True, exist_ok=True)
    if args.scene != "uniform":
        (args.out / "radius_maps").mkdir(exist_ok=True)
    settings = {k: str(v) for k, v in vars(args).items() if k != "scene" or v != "uniform"}  # old sets' meta as it was
    meta = {"simulator": "scripts/make_heldout.py", "settings": settings, "images": {}}
    for path, k in tqdm([(p, k) for p in crops for k in range(args.draws)], desc="held-out photos"):
        rng = np.random.default_rng([args.seed, zlib.crc32(path.stem.encode())] + ([k] if args.draws > 1 else []))
        radius = float(rng.uniform(args.rmin, args.rmax))
        blurred, draw, rmap = render_scene(crops[path], rng, radius, args, args.scene)
        name = path.stem if args.draws == 1 else f"{path.stem}_d{k}"
        Image.fromarray(reference(crops[path], args)).save(args.out / "sharp" / f"{name}.png")
        Image.fromarray(blurred).save(args.out / "blurred" / f"{name}.png")
        entry = {**draw, "radius": round(radius, 3), "condition": CONDITIONS[args.scene], "source": str(path)}
        if rmap is not None:
            np.save(args.out / "radius_maps" / f"{name}.npy", rmap.astype(np.float32))
            entry.update(radius="depth-varying", max_radius=round(radius, 3), radius_map=f"radius_maps/{name}.npy")
        meta["images"][name] = entry
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
