"""False-alarm rates of the default's in-focus tests, measured on sharp photos (issue 30 item 5).

  python scripts/false_alarms.py --photos data/corpus/photos --sizes 256 --camera-draws 4 --seed 1 --threads 1

The blind estimate (hidd.blind) decides "in focus or blurred" through a chain of thresholds. On a sharp photo every
one of them is a test whose false alarm is a sharp photo read as blurred (or, for the ringing guard, a correct result
flagged). This script reads, on sharp photos, the statistic each of them thresholds, and states how often today's
value alarms, with the exact (Clopper–Pearson) one-sided 95 % upper bound of that rate counted over photos: the crops
and camera draws of one photo are not independent trials, so a photo counts as a false alarm if any of its takes does
(the rate per take is given too). Nothing is changed: the statistics are read with the default's own functions.

Photos: each one cut into square crops and quantised as scripts/check_sharp.py does (its `crops`), each crop (a) as
it is and (b) through --camera-draws random in-focus cameras (check_sharp's `camera_takes`: hidd.camera.draws.
lens_camera with radius 0: lens softening 0.3–1 px, Poisson–Gaussian noise, demosaicing, JPEG q 75–95). The two
kinds are counted apart. Statistics, per take, in the linear light of fast's sRGB curve (what hidd.measurement reads):

- whole-photo spectral fit (hidd.blind.psf_fit): at each scale estimate_psf tests, the best blur's residual over
  the best in-focus residual (IN_FOCUS_MARGIN: a blur is read where it is ≤ the margin at some scale) and, at full
  resolution, the radius of the best fit of all (IN_FOCUS_RADIUS: ≥ it, a blur fits better than focus);
- the tiles' radii (hidd.blind.radius_map, as tile_radius_quantiles reads them): the share of 64 px tiles whose best
  blur beats focus by TILE_IN_FOCUS_MARGIN, and the lower quartile r_q of the filtered radii that fast's shared
  blur uses (a false alarm: r_q ≥ IN_FOCUS_RADIUS); where r_q reads a blur, the spread r_(3/4) / r_q (MIN_SPREAD);
- the vetoes of hidd.blind.defocus, each asked at misread blurs of radius r in --radii (and at the blur the photo's
  own fit or tiles would propose): the band excess (MAX_BAND_EXCESS), the full-resolution fit ratio with the steep
  noise floor (MAX_FINEST_FIT_RATIO), the shared blur's fit ratio at 0.8 r, softened 0.6 (MAX_FIT_RATIO) and the
  edge sharpness ρ (hidd.blind.edge_bound.MAX_EDGE_SHARPNESS). A veto's miss lets a false blur through: its false
  alarm is a statistic at or under its bound. A blur only a coarser scale saw must pass three of them together (noise,
  full-resolution fit, edges): that joint miss is a row of its own;
- the edges' own reading (edge_read_radius; EDGE_READ_MIN_RADIUS: a reading in [it, the top] is deblurred);
- the ringing guard (hidd.ringing, hidd.no_harm), the sharp crop taken as a result: its notch excess at the lenses
  r in --notch-radii (MAX_NOTCH_EXCESS: above it the result "rings"), and at r in --edge-notch-radii, whose first
  notches lie about HIGHEST_NOTCH (0.61/r cycles/px; the ones above it are read with that cut lifted here only).

Writes OUTPUT/false_alarms.md (the table, with this run's command) and OUTPUT/false_alarms.json (the command, the
settings, every take's statistics and the table's counts). MAX_NOISE_SLOPE is not measured: it bounds the fit's
noise model, not a statistic that a sharp photo could pass.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling check_sharp, as when run as a script
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
from check_sharp import camera_takes, crop_size, crops, false_alarm_bound  # noqa: E402
from hidd import no_harm, ringing  # noqa: E402
from hidd.blind import defocus, edge_bound, psf_fit, radius_map  # noqa: E402
from hidd.blind.noise import band_excess  # noqa: E402
from hidd.blind.spectrum import gray_linear, tile_spectra  # noqa: E402
from hidd.camera.psf import LensPSF  # noqa: E402
from hidd.camera.tone import tone_curve  # noqa: E402
from hidd.cli import one_line_errors  # noqa: E402
from hidd.imageio import list_images  # noqa: E402

RADII = (2.0, 3.0, 4.0, 6.0, 8.0)  # px: misread blurs at which the vetoes are asked
NOTCH_RADII = (3.0, 4.0, 6.0, 8.0)  # px: lenses at whose first notch a sharp "result" is asked whether it rings
EDGE_NOTCH_RADII = (1.6, 1.8, 2.1)  # px: first notches ≈ 0.38, 0.34, 0.29 cycles/px, about HIGHEST_NOTCH
QUARTILES = (0.25, 0.75)  # fast's shared_quantile q and 1 − q


def spectral_fit(gray: torch.Tensor, max_radius: float) -> tuple[psf_fit.WelchPyramid, list[dict]]:
    """The whole-photo fit of a gray linear-light image (H, W), at each scale estimate_psf's in-focus test runs (all
    of them, also past a blur): the best radius of all, the best blur (≥ IN_FOCUS_RADIUS) and its residual over the
    best in-focus one (`ratio`), radii in full-resolution px."""
    pyramid = psf_fit.welch_pyramid(gray[None], max_radius).photo(0)
    scales, scale = [], 1
    while True:
        size = pyramid.sizes[scale]
        top = psf_fit._top(scale, size, max_radius)  # the search's own range at this scale
        residual = pyramid.first_search if scale == 1 else psf_fit.search_residual(pyramid.spectra[scale], size, top)
        radii = torch.tensor(psf_fit._radius_grid(top), dtype=residual.dtype, device=residual.device)
        best, ratio = psf_fit.pick_radius(residual, top)
        blurred = radii >= psf_fit.IN_FOCUS_RADIUS
        misread = float(radii[blurred][residual[blurred].argmin()]) * scale if bool(blurred.any()) else None
        scales.append({"scale": scale, "best_radius": float(best) * scale, "ratio": float(ratio), "misread": misread})
        if top * scale >= max_radius or min(pyramid.shape) // (2 * scale) < psf_fit.IN_FOCUS_WINDOW:
            return pyramid, scales
        scale *= 2


def tile_statistics(linear: torch.Tensor, quantiles=QUARTILES, tile: int = 64, max_tiles: int = 400) -> dict:
    """The tiles' fits of an image (C, H, W) in linear light as radius_map.tile_radius_quantiles reads them (same
    tiles, stride, slope, margin, median filter): each tile's best blur over its best in-focus residual, the share of
    tiles whose blur wins by TILE_IN_FOCUS_MARGIN, and the quantiles of the filtered radii."""
    gray = gray_linear(linear, "tile_statistics")
    h, w = gray.shape
    tile = min(tile, h, w)
    stride = max(1, tile // 4, math.ceil(math.sqrt(h * w / max_tiles)))
    spectra = tile_spectra(gray, tile, stride)
    top = min(radius_map.TILE_MAX_RADIUS, (tile - 1) / 2 - 1)
    residual = psf_fit.search_residual(spectra, tile, top, psf_fit.TILE_SLOPE)
    best, ratio = psf_fit.pick_radius(residual, top)
    blurred = ratio <= psf_fit.TILE_IN_FOCUS_MARGIN
    radii = torch.where(blurred, best, torch.zeros_like(best)).cpu().numpy()
    radii = ndimage.median_filter(radii, size=3, mode="nearest")  # tile_radii's smooth=3
    radii = np.where(radii < psf_fit.IN_FOCUS_RADIUS, 0.0, radii)
    return {"tiles": int(blurred.numel()), "tiles_blurred": int(blurred.sum()),
            "min_tile_ratio": float(ratio.min()),
            "quantiles": [float(v) for v in np.quantile(radii, quantiles)]}


def take_statistics(photo: torch.Tensor, max_radius: float, radii=RADII, notch_radii=NOTCH_RADII,
                    edge_notch_radii=EDGE_NOTCH_RADII) -> dict:
    """Every statistic of one take, a photo (1, C, H, W) in [0, 1] (see the module docstring)."""
    linear = tone_curve("srgb").decode(photo)[0]
    gray = gray_linear(linear, "false_alarms")
    pyramid, scales = spectral_fit(gray, max_radius)
    tiles = tile_statistics(linear)
    r_q, r_high = tiles["quantiles"]
    finest, coarse = scales[0]["misread"], scales[-1]["misread"] if len(scales) > 1 else None
    shared = defocus.SHARED_RADIUS_FACTOR

    def band(r):
        return band_excess(linear, LensPSF(r), defocus.LINEAR)

    def finest_ratio(r):
        return psf_fit.lens_fit_ratio(linear, LensPSF(r), max_noise_slope=defocus.FINE_BAND_NOISE_SLOPE,
                                      pyramid=pyramid)

    def shared_ratio(r):
        return psf_fit.lens_fit_ratio(linear, LensPSF(shared * r, softening=defocus.SHARED_SOFTENING),
                                      pyramid=pyramid)

    asked = [r for r in radii if r > 0]
    rho = edge_bound.edge_sharpness_batch(linear[None].expand(len(asked), -1, -1, -1), asked).tolist()
    read = edge_bound.edge_read_radius(linear, defocus.EDGE_READ_MAX_RADIUS + edge_bound.EDGE_READ_STEP)
    read_top = min(defocus.EDGE_READ_MAX_RADIUS, max_radius, psf_fit.RESOLVED_RADIUS_FRACTION * min(gray.shape))
    with mock.patch.object(ringing, "HIGHEST_NOTCH", ringing.HIGHEST_FREQUENCY):  # read above today's cut, here only
        edge_notch = {str(r): ringing.notch_excess(photo[0], LensPSF(r)) for r in edge_notch_radii}
    return {
        "scales": scales,
        "fit_ratio": min(s["ratio"] for s in scales),
        "fit_radius": scales[0]["best_radius"],
        **tiles,
        "spread": r_high / r_q if r_q >= psf_fit.IN_FOCUS_RADIUS else None,
        "band_excess": {str(r): band(r) for r in asked},
        "finest_fit_ratio": {str(r): finest_ratio(r) for r in asked},
        "shared_fit_ratio": {str(r): shared_ratio(r) for r in asked},
        "edge_sharpness": {str(r): v for r, v in zip(asked, rho)},
        "own": {  # at the blur the photo's own readings would propose
            "band_excess": band(finest) if finest else None, "finest_radius": finest,
            "band_excess_coarse": band(coarse) if coarse else None,
            "finest_fit_ratio": finest_ratio(coarse) if coarse else None, "coarse_radius": coarse,
            "edge_sharpness": edge_bound.edge_sharpness(linear, coarse) if coarse else None,
            "shared_fit_ratio": shared_ratio(r_q) if r_q >= psf_fit.IN_FOCUS_RADIUS else None,
        },
        "edge_read": read if read <= read_top else 0.0, "edge_read_raw": read, "edge_read_top": read_top,
        "notch_excess": {str(r): ringing.notch_excess(photo[0], LensPSF(r)) for r in notch_radii},
        "edge_notch_excess": edge_notch,
    }


@dataclass(frozen=True)
class Test:
    """One threshold as a test on sharp photos: the statistic of a take it reads (None or NaN: not asked of that
    take) and whether a value is a false alarm."""

    constant: str  # a module constant, or words for several together
    value: float | str
    statistic: str  # what is read, and when it alarms
    read: Callable[[dict], float | None]
    alarm: Callable[[float], bool]


def _at(key: str, r: float) -> Callable[[dict], float | None]:
    return lambda take: take[key].get(str(r))


def _own(key: str) -> Callable[[dict], float | None]:
    return lambda take: take["own"][key]


def _vetoes(band: Callable, finest: Callable, edge: Callable) -> Callable[[dict], float | None]:
    """The largest of a coarse find's three vetoes' statistics over their bounds (≤ 1: the blur passes them all)."""
    def read(take):
        values = (band(take), finest(take), edge(take))
        if not all(_asked(v) for v in values):
            return None
        bounds = (defocus.MAX_BAND_EXCESS, defocus.MAX_FINEST_FIT_RATIO, edge_bound.MAX_EDGE_SHARPNESS)
        return max(v / b for v, b in zip(values, bounds))
    return read


def default_tests(radii=RADII, notch_radii=NOTCH_RADII, edge_notch_radii=EDGE_NOTCH_RADII) -> list[Test]:
    """The tests, at today's values of the constants."""
    margin, focus, tile_margin = psf_fit.IN_FOCUS_MARGIN, psf_fit.IN_FOCUS_RADIUS, psf_fit.TILE_IN_FOCUS_MARGIN
    band, finest, fit = defocus.MAX_BAND_EXCESS, defocus.MAX_FINEST_FIT_RATIO, defocus.MAX_FIT_RATIO
    sharpness, notch = edge_bound.MAX_EDGE_SHARPNESS, no_harm.MAX_NOTCH_EXCESS
    read_min = defocus.EDGE_READ_MIN_RADIUS
    name = {"margin": "hidd.blind.psf_fit.IN_FOCUS_MARGIN", "band": "hidd.blind.defocus.MAX_BAND_EXCESS",
            "finest": "hidd.blind.defocus.MAX_FINEST_FIT_RATIO", "fit": "hidd.blind.defocus.MAX_FIT_RATIO",
            "edge": "hidd.blind.edge_bound.MAX_EDGE_SHARPNESS", "notch": "hidd.no_harm.MAX_NOTCH_EXCESS"}
    tests = [
        Test(name["margin"], margin, f"best blur's fit residual / in-focus residual, least over scales; ≤ {margin}",
             lambda t: t["fit_ratio"], lambda v: v <= margin),
        Test("hidd.blind.psf_fit.IN_FOCUS_RADIUS", focus, f"radius of the best full-resolution fit; ≥ {focus}",
             lambda t: t["fit_radius"], lambda v: v >= focus),
        Test("hidd.blind.psf_fit.TILE_IN_FOCUS_MARGIN", tile_margin,
             f"tiles' lower-quartile radius r_q (tile blurs won by ≤ {tile_margin}, median-filtered); ≥ {focus}",
             lambda t: t["quantiles"][0], lambda v: v >= focus),
        Test("hidd.blind.defocus.MIN_SPREAD", defocus.MIN_SPREAD,
             f"r_(3/4) / r_q where r_q ≥ {focus}; ≥ {defocus.MIN_SPREAD}",
             lambda t: t["spread"], lambda v: v >= defocus.MIN_SPREAD),
        Test(name["band"], band, f"band excess at the finest scale's best blur; ≤ {band}",
             _own("band_excess"), lambda v: v <= band),
        *[Test(name["band"], band, f"band excess at r = {r:g}; ≤ {band}", _at("band_excess", r), lambda v: v <= band)
          for r in radii],
        Test(name["finest"], finest, f"full-res. fit ratio (γ ≤ 2) at the coarse scale's best blur; ≤ {finest}",
             _own("finest_fit_ratio"), lambda v: v <= finest),
        *[Test(name["finest"], finest, f"full-res. fit ratio (γ ≤ 2) at r = {r:g}; ≤ {finest}",
               _at("finest_fit_ratio", r), lambda v: v <= finest) for r in radii],
        Test(name["fit"], fit, f"fit ratio of the shared blur 0.8 r_q where r_q ≥ {focus}; ≤ {fit}",
             _own("shared_fit_ratio"), lambda v: v <= fit),
        *[Test(name["fit"], fit, f"fit ratio of the shared blur 0.8 r, r = {r:g}; ≤ {fit}",
               _at("shared_fit_ratio", r), lambda v: v <= fit) for r in radii],
        Test(name["edge"], sharpness, f"edge sharpness ρ at the coarse scale's best blur; ≤ {sharpness}",
             _own("edge_sharpness"), lambda v: v <= sharpness),
        *[Test(name["edge"], sharpness, f"edge sharpness ρ at r = {r:g}; ≤ {sharpness}", _at("edge_sharpness", r),
               lambda v: v <= sharpness) for r in radii],
        Test("the three vetoes of a coarse find", "–", "max(band excess / 5.3, full-res. fit ratio / 3, ρ / 1.3) at "
             "the coarse scale's best blur; ≤ 1", _vetoes(_own("band_excess_coarse"), _own("finest_fit_ratio"),
                                                          _own("edge_sharpness")), lambda v: v <= 1),
        *[Test("the three vetoes of a coarse find", "–", f"the same at r = {r:g}; ≤ 1",
               _vetoes(_at("band_excess", r), _at("finest_fit_ratio", r), _at("edge_sharpness", r)),
               lambda v: v <= 1) for r in radii],
        Test("hidd.blind.defocus.EDGE_READ_MIN_RADIUS", read_min, f"edges' reading r_e; {read_min:g} ≤ r_e ≤ top",
             lambda t: t["edge_read"], lambda v: v >= read_min),  # a reading past the top is taken as none (0)
        *[Test(name["notch"], notch, f"notch excess of the sharp crop at r = {r:g}; > {notch}",
               _at("notch_excess", r), lambda v: v > notch) for r in notch_radii],
        *[Test("hidd.ringing.HIGHEST_NOTCH", ringing.HIGHEST_NOTCH,
               f"notch excess at r = {r:g} (first notch ≈ {0.61 / r:.2f} c/px); > {notch}",
               _at("edge_notch_excess", r), lambda v: v > notch) for r in edge_notch_radii],
    ]
    return tests


def _asked(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def summarise(takes: list[dict], test: Test) -> dict:
    """A test's false alarms over takes (each with `photo`, `camera` and its statistics), the crops as they are and
    the camera takes apart: takes asked and alarmed, photos asked and alarmed (a photo alarms if any take does), the
    one-sided 95 % Clopper–Pearson upper bound over photos, and the statistic's least, median and largest value."""
    out = {"constant": test.constant, "value": test.value, "statistic": test.statistic}
    for kind, camera in (("as_is", False), ("camera", True)):
        values = [(t["photo"], test.read(t)) for t in takes if (t["camera"] != "") == camera]
        values = [(photo, float(v)) for photo, v in values if _asked(v)]
        photos = sorted({photo for photo, _ in values})
        alarmed = sorted({photo for photo, v in values if test.alarm(v)})
        numbers = [v for _, v in values]
        out[kind] = {"takes": len(values), "takes_alarmed": sum(test.alarm(v) for v in numbers),
                     "photos": len(photos), "photos_alarmed": len(alarmed), "alarmed": alarmed,
                     "bound": false_alarm_bound(len(alarmed), len(photos)) if photos else None,
                     "range": [min(numbers), statistics.median(numbers), max(numbers)] if numbers else None}
    return out


def _cells(kind: dict) -> list[str]:
    if not kind["takes"]:
        return ["not asked", "–", "–"]
    low, mid, high = kind["range"]
    return [f"{kind['photos_alarmed']}/{kind['photos']} ({kind['takes_alarmed']}/{kind['takes']})",
            f"{kind['bound']:.1%}", f"{low:.2f} / {mid:.2f} / {high:.2f}"]


def markdown(rows: list[dict], command: str, tile_rates: dict) -> str:
    """The table of summarise's rows, with the run's command and the tiles' own rate."""
    lines = [f"`{command}`", "",
             "| constant | value | statistic; false alarm when | as is: photos (takes) | 95 % bound | as is: min / "
             "median / max | camera: photos (takes) | 95 % bound | camera: min / median / max |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        constant = f"`{row['constant'].rsplit('.', 1)[1]}`" if row["constant"].startswith("hidd.") else row["constant"]
        value = f"{row['value']:g}" if isinstance(row["value"], (int, float)) else str(row["value"])
        lines.append("| " + " | ".join([constant, value,
                                        row["statistic"], *_cells(row["as_is"]), *_cells(row["camera"])]) + " |")
    lines.append("")
    for kind, (blurred, tiles) in tile_rates.items():
        lines.append(f"Tiles ({kind}): {blurred} of {tiles} 64 px tiles' best blur beats focus by "
                     f"TILE_IN_FOCUS_MARGIN ({blurred / max(tiles, 1):.1%}).")
    return "\n".join(lines) + "\n"


def _plain(value):
    """value with NaN as None (strict JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=Path, default=Path("data/corpus/photos"), help="a folder of in-focus photos")
    p.add_argument("--sizes", type=crop_size, nargs="+", default=[256], help="square crop sides (check_sharp's)")
    p.add_argument("--camera-draws", type=int, default=4, metavar="N", help="in-focus camera takes per crop")
    p.add_argument("--seed", type=int, default=0, help="seed of the camera draws")
    p.add_argument("--max-radius", type=float, default=psf_fit.MAX_RADIUS, help="top of the blind search (px)")
    p.add_argument("--radii", type=float, nargs="+", default=list(RADII), help="misread blurs the vetoes are asked")
    p.add_argument("--notch-radii", type=float, nargs="+", default=list(NOTCH_RADII))
    p.add_argument("--edge-notch-radii", type=float, nargs="+", default=list(EDGE_NOTCH_RADII))
    p.add_argument("--limit", type=int, help="only the first N photos (a quick look)")
    p.add_argument("--threads", type=int, help="torch intra-op threads; default: torch's choice")
    p.add_argument("--output", type=Path, default=Path("results/false_alarms"))
    args = p.parse_args(argv)
    command = "python scripts/false_alarms.py " + " ".join(sys.argv[1:] if argv is None else argv)
    with one_line_errors("false_alarms"):
        if args.camera_draws < 0:
            raise ValueError(f"--camera-draws must be ≥ 0, got {args.camera_draws}")
        if min(args.radii + args.notch_radii + args.edge_notch_radii) <= 0:
            raise ValueError("--radii, --notch-radii and --edge-notch-radii must be > 0")
        photos = list_images(args.photos)[:args.limit]
        if not photos:
            raise FileNotFoundError(f"{args.photos}: no images here")
        if args.threads:
            torch.set_num_threads(args.threads)
        rng, generator = random.Random(args.seed), torch.Generator().manual_seed(args.seed)
        start, takes = time.perf_counter(), []
        for path in tqdm(photos, desc="sharp photos"):
            name = path.relative_to(args.photos).with_suffix("").as_posix()
            for size, crop in crops(path, args.sizes):
                for camera, photo in camera_takes(crop, args.camera_draws, rng, generator):
                    stats = take_statistics(photo, args.max_radius, args.radii, args.notch_radii,
                                            args.edge_notch_radii)
                    takes.append({"photo": name, "size": size, "camera": camera, **stats})
        if not takes:
            raise ValueError(f"no photo in {args.photos} is as large as the smallest size {min(args.sizes)}")
        rows = [summarise(takes, test) for test in default_tests(args.radii, args.notch_radii, args.edge_notch_radii)]
        tile_rates = {kind: (sum(t["tiles_blurred"] for t in takes if (t["camera"] != "") == camera),
                             sum(t["tiles"] for t in takes if (t["camera"] != "") == camera))
                      for kind, camera in (("as is", False), ("camera", True))}
        table = markdown(rows, command, tile_rates)
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "false_alarms.md").write_text(table)
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        (args.output / "false_alarms.json").write_text(json.dumps(_plain(
            {"command": command, "seconds": time.perf_counter() - start, "settings": settings, "summary": rows,
             "tiles": tile_rates, "takes": takes}), indent=1))
        print(table)
        print(f"{len(takes)} takes of {len(photos)} photos; wrote {args.output / 'false_alarms.md'} and .json")


if __name__ == "__main__":
    main()
