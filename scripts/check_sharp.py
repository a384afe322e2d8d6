"""Does the default leave sharp photos alone? The blind estimate, and optionally the result, on in-focus photos.

  python scripts/prepare_corpus.py                       # data/corpus/photos: 28 sharp photos (docs/DATA.md)
  python scripts/check_sharp.py --photos data/corpus/photos --sizes 256 384 512
  python scripts/check_sharp.py --photos data/corpus/photos --sizes 256 --deblur --threads 1
  python scripts/check_sharp.py --photos data/corpus/photos --sizes 256 --camera-draws 4 --seed 1

A deblurring default is only safe if it recognises a photo that needs none. Each photo (any image
hidd.imageio reads, colour or grey) is resized (short side, anti-aliased) and centre-cropped to each square
--size and quantised to 8 bits, as scripts/make_benchmark.py prepares its photos, and is its own target.
Per photo and size: the PSF radius the preset's blind measurement model reads (hidd.measurement: the
whole-photo spectral fit, the edge bound, the tiles' shared blur, the edges' own reading; 0 is in focus)
and, with --deblur, the preset's result: its PSNR against the photo (inf: returned unchanged) and the
share of the deblurring the no-harm guard kept (hidd.no_harm; 0: the photo itself). Writes
OUTPUT/sharp.csv (row by row) and OUTPUT/config_PRESET.yaml and prints the photos read as blurred.

With --camera-draws N each crop is also taken, in focus, through N random cameras (hidd.camera.draws.lens_camera
with radius 0: its lens softening 0.3–1 px, Poisson–Gaussian noise, demosaicing, JPEG q 75–95), as an in-focus
photo comes out of a camera; the `camera` column numbers the draw (empty: the crop as it is). This measures the
blind estimate's verdict as a test: the share of sharp crops it reads as blurred, for the crops as they are and
for the camera takes apart (a take holds a real, small lens softening), each with the share of photos any of whose
crops read blurred and its 95 % upper bound (Clopper–Pearson over photos: the crops and draws of one photo are not
independent trials). With --deblur, a camera take's PSNR against the crop it was made from (the scene) is written
for the photo (`photo_vs_scene`) and for the result (`psnr_vs_scene`): a lens's own softening is a blur too, and
deblurring it should bring the photo nearer its scene, not leave it unchanged.
"""
from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from hidd.camera import quantize  # noqa: E402
from hidd.camera.draws import lens_camera  # noqa: E402
from hidd.cli import one_line_errors  # noqa: E402
from hidd.config import save_config  # noqa: E402
from hidd.deblur import Deblurrer  # noqa: E402
from hidd.imageio import list_images, read_image, to_rgb  # noqa: E402
from hidd.measurement import measurement_model  # noqa: E402
from hidd.metrics import psnr  # noqa: E402
from hidd.prior import load_prior  # noqa: E402
from make_benchmark import square, to_tensor  # noqa: E402  (sibling script: the benchmark's own crop)

FIELDS = ("photo", "size", "camera", "radius", "share", "psnr_vs_photo",  # share: of the deblurring kept
          "photo_vs_scene", "psnr_vs_scene")  # camera takes: the photo's and the result's PSNR against the crop


def crops(path: Path, sizes: list[int]):
    """(size, (1, 3, S, S) tensor) for each size the photo's short side allows."""
    pixels = to_rgb(read_image(path).pixels)
    for size in sizes:
        if min(pixels.shape[:2]) >= size:
            yield size, quantize(to_tensor(square(pixels, size)).float())


def camera_takes(crop: torch.Tensor, draws: int, rng: random.Random, generator: torch.Generator):
    """("", the crop) and (i, the crop through in-focus camera i) for i < draws (see the module docstring)."""
    yield "", crop
    for i in range(draws):
        yield i, lens_camera(rng, 0.0).render(crop, generator=generator)


def false_alarm_bound(alarms: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper–Pearson upper bound of a rate seen `alarms` times in n trials (scipy's exact interval)."""
    from scipy.stats import binomtest

    return float(binomtest(alarms, n).proportion_ci(2 * confidence - 1, method="exact").high)


def crop_size(text: str) -> int:
    size = int(text)
    if size < 16:
        raise argparse.ArgumentTypeError(f"{size}: crops need at least 16 px (the blind fit's smallest window)")
    return size


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=Path, default=Path("data/corpus/photos"), help="a folder of in-focus photos")
    p.add_argument("--sizes", type=crop_size, nargs="+", default=[256], help="square crop sides (photos too small are skipped)")
    p.add_argument("--preset", default="fast", help="sampler preset whose blind settings (and result) are checked")
    p.add_argument("--checkpoint", help="default: checkpoints/hidd-default.pt")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--deblur", action="store_true", help="also run the preset and compare its result with the photo")
    p.add_argument("--camera-draws", type=int, default=0, metavar="N",
                   help="also take each crop through N random in-focus cameras (lens softening, noise, demosaicing, "
                        "JPEG)")
    p.add_argument("--seed", type=int, default=0, help="seed of the camera draws")
    p.add_argument("--threads", type=int, help="torch intra-op threads (CPU); default: torch's choice")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--output", type=Path, default=Path("results/check_sharp"))
    args = p.parse_args(argv)
    with one_line_errors("check_sharp"):
        photos = list_images(args.photos)
        if not photos:
            raise FileNotFoundError(f"{args.photos}: no images here")
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.camera_draws < 0:
            raise ValueError(f"--camera-draws must be ≥ 0, got {args.camera_draws}")
        prior = load_prior(args.checkpoint, preset=args.preset, overrides=args.overrides, device=args.device)
        deblur = Deblurrer(prior) if args.deblur else None
        rng, generator = random.Random(args.seed), torch.Generator().manual_seed(args.seed)
        args.output.mkdir(parents=True, exist_ok=True)
        save_config(prior.config, args.output / f"config_{args.preset}.yaml")
        rows = []
        with open(args.output / "sharp.csv", "w", newline="") as f:  # row by row: a stopped run keeps its rows
            writer = csv.DictWriter(f, FIELDS)
            writer.writeheader()
            for path in tqdm(photos, desc="sharp photos"):
                name = path.relative_to(args.photos).with_suffix("").as_posix()
                for (size, scene), (camera, photo) in ((c, t) for c in crops(path, args.sizes)
                                                       for t in camera_takes(c[1], args.camera_draws, rng, generator)):
                    row = {"photo": name, "size": size, "camera": camera, "share": "", "psnr_vs_photo": "",
                           "photo_vs_scene": "", "psnr_vs_scene": ""}
                    if deblur is None:
                        row["radius"] = float(measurement_model(photo, prior.config.sampler).radius[0])
                    else:
                        result = deblur(photo.to(args.device))
                        out = result.images[0].permute(1, 2, 0).cpu().numpy()
                        row.update(radius=float(result.radius[0]),
                                   share="" if result.share is None else float(result.share[0]),  # None: guard off
                                   psnr_vs_photo=psnr(out, photo[0].permute(1, 2, 0).numpy()))
                        if camera != "":  # in focus through a camera: did the deblur bring it nearer the scene?
                            truth = scene[0].permute(1, 2, 0).numpy()
                            row.update(photo_vs_scene=psnr(photo[0].permute(1, 2, 0).numpy(), truth),
                                       psnr_vs_scene=psnr(out, truth))
                    rows.append(row)
                    writer.writerow(row)
                    f.flush()
        blurred = [r for r in rows if r["radius"] > 0]
        print(f"{len(rows)} crops of {len(photos)} photos; read as blurred: {len(blurred)}"
              + (f"; returned changed: {sum(r['psnr_vs_photo'] < float('inf') for r in rows)}" if args.deblur else ""))
        for label, taken in (("as they are", False), ("camera takes", True)):
            subset = [r for r in rows if (r["camera"] != "") == taken]
            if subset:
                names = {r["photo"] for r in subset}
                alarmed = {r["photo"] for r in subset if r["radius"] > 0}
                bound = false_alarm_bound(len(alarmed), len(names))
                print(f"  {label}: {sum(r['radius'] > 0 for r in subset)} of {len(subset)} read blurred; photos: "
                      f"{len(alarmed)} of {len(names)} (95 % upper bound {bound:.1%})")
        if blurred:
            print("\n| photo | size | camera | radius | PSNR against the photo |\n|---|---|---|---|---|")
            for r in blurred:
                psnr_text = f"{r['psnr_vs_photo']:.2f}" if args.deblur else "—"
                print(f"| {r['photo']} | {r['size']} | {r['camera']} | {r['radius']:.2f} | {psnr_text} |")
        print(f"wrote {args.output / 'sharp.csv'}")


if __name__ == "__main__":
    main()
