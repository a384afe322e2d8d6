"""Sampling speed: ms per network evaluation (NFE), seconds per image, images/s, peak memory, and the result's PSNR.

  python scripts/bench_speed.py                                   # paper (+ fast) presets, 256² and 1680x1120
  python scripts/bench_speed.py --device cuda --batch 8 --modes fp32,bf16+split,bf16+split+reduce-overhead
  python scripts/bench_speed.py --device cpu --threads 1 --sizes 256x256 --presets fast
  python scripts/bench_speed.py --device cpu --threads 2 --sizes 256x256 --presets fast --iterations 0 --modes fp32,bf16
  python scripts/bench_speed.py --device cpu --threads 2 --sizes 256x256 --presets fast --iterations 0 --compile default

Modes: `fp32`, `bf16`, `fp16` (hidd.precision: autocast of the network) and `optimised` (precision auto: on CUDA
bf16, or fp16 before compute capability 8, with channels_last), each optionally followed by `+NORM` (the GroupNorms'
reduction, hidd.models.norm: auto, native, split) and `+COMPILE` (torch.compile, hidd.models.compile: off, default,
max-autotune, reduce-overhead), e.g. `bf16+split+reduce-overhead`; --norm and --compile give those a mode does not
name (default auto and off). Default modes: fp32 on a CPU, fp32 and optimised on CUDA. Every mode tiles the network
automatically when an image would exceed the memory budget (--max-memory, --tile force it); the table says how. Each
case runs in its own subprocess, so peak RSS is per case. On CUDA, and with a compile mode, a 2-level run of the same
network comes first (compilation, cuDNN autotuning, CUDA graph recording): its time is the table's "warm-up".
--budget bounds a whole invocation: a case still running at its end is stopped and listed as cut (a failed case is
listed with its error, and the script exits 1 at the end); the table (and its JSON) is rewritten after every case,
so what finished is kept whatever stops the run.
PSNR is the result's against the sharp synthetic scene (the input's is in the header), for the modes' accuracy; it
is given only where the whole preset ran (--iterations 0 or at least its levels).

A preset of more than --iterations sampler iterations is run for --iterations only; its full
time is extrapolated from the measured time per iteration (the NFE per iteration is constant)
and marked "(extrapolated)". ms/NFE is wall time over network evaluations, sampler included.
"curve point" is what one point of hidd-reconstruct's PSNR/SSIM-vs-iteration curves (with --target) costs for
the batch on the CPU, and its share of one sampler iteration (hidd-reconstruct keeps the points within 10 % of
the sampling time: hidd.reconstruct.CurveLogger).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from hidd.camera import Camera, LensPSF
from hidd.deblur import Deblurrer
from hidd.memory import peak_rss_bytes
from hidd.metrics import psnr, ssim
from hidd.models.compile import COMPILE_MODES
from hidd.models.norm import NORMS
from hidd.prior import load_prior, preset_names
from hidd.tiling import TilingConfig, round_up

BLUR_RADIUS = 4.0  # disk radius of the synthetic defocus, px
MODES = ("fp32", "bf16", "fp16", "optimised")  # hidd.precision's fixed precisions, and 'auto'


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def sharp_scene(height: int, width: int) -> torch.Tensor:
    """A synthetic sharp photo (colour gradients and sharp-edged rectangles), (3, H, W) in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    freqs = 0.2 + 1.3 * torch.rand(3, 3, generator=g)
    x = torch.stack([0.5 + 0.4 * torch.sin(2 * torch.pi * (f * xx + q * yy) + p) for f, q, p in freqs])
    for y0, x0, h, w in (torch.rand(12, 4, generator=g) * 0.5).tolist():
        x[:, int(y0 * height):int((y0 + h) * height), int(x0 * width):int((x0 + w) * width)] = \
            torch.rand(3, 1, 1, generator=g)
    return x


def blurred_scene(height: int, width: int, batch: int) -> torch.Tensor:
    """`sharp_scene` defocused through the camera model (sRGB, 8-bit): (batch, 3, H, W). Synthetic so the benchmark
    needs no image files; speed ignores content."""
    return Camera(psf=LensPSF(BLUR_RADIUS)).render(sharp_scene(height, width)[None]).expand(batch, -1, -1, -1) \
        .contiguous()


def run_case(case: dict) -> dict:
    """Time one (preset, size, mode) case in this process; returns its measurements."""
    if case["threads"]:
        torch.set_num_threads(case["threads"])
    device = torch.device(case["device"])

    def prior_with(steps):
        overrides = [] if steps is None else [f"sampler.num_steps={steps}"]
        return load_prior(case["checkpoint"], preset=case["preset"], overrides=overrides, device=device)

    full_steps = prior_with(None).config.sampler.num_steps
    steps = min(full_steps, case["iterations"] or full_steps)
    prior = prior_with(steps)
    tiling = TilingConfig(tile=case["tile"], max_memory_gb=case["max_memory"])
    precision = "auto" if case["mode"] == "optimised" else case["mode"]
    start = time.perf_counter()
    deblurrer = Deblurrer(prior, tiling=tiling, precision=precision, norm=case["norm"], compile=case["compile"])
    y = blurred_scene(case["height"], case["width"], case["batch"]).to(device)

    warm = device.type == "cuda" or case["compile"] != "off"
    if warm:  # a short run of the same network and shapes first
        deblurrer.prior = dataclasses.replace(prior, config=prior_with(min(2, steps)).config)
        deblurrer(y, seed=0)
        deblurrer.prior = prior
    synchronize(device)
    warm_up = time.perf_counter() - start if warm else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = deblurrer(y, seed=0)
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()
    channels = prior.config.model.channels  # a 1-channel model sees each colour channel as an image
    plan = deblurrer.tiler.plan((case["batch"] * 3 // channels, channels,
                                 *(round_up(s, deblurrer.multiple) for s in y.shape[-2:])))
    full_seconds = seconds * full_steps / steps
    start = time.perf_counter()  # one PSNR/SSIM-vs-iteration point (hidd-reconstruct --target): the batch's metrics
    images = result.images.permute(0, 2, 3, 1).cpu().numpy()
    for image, reference in zip(images, y.permute(0, 2, 3, 1).cpu().numpy()):
        psnr(image, reference), ssim(image, reference)
    curve_point = time.perf_counter() - start
    sharp = sharp_scene(case["height"], case["width"]).permute(1, 2, 0).numpy()
    return {**case, "precision": deblurrer.precision.name, "channels_last": deblurrer.precision.channels_last,
            "norm_used": deblurrer.precision.norm, "warm_up_s": warm_up,
            "steps_run": steps, "full_steps": full_steps, "nfe": result.nfe,
            "nfe_full": result.nfe * full_steps // steps, "seconds": seconds,
            "ms_per_nfe": 1000 * seconds / result.nfe if result.nfe else float("nan"),
            "seconds_per_image_full": full_seconds / case["batch"], "images_per_s_full": case["batch"] / full_seconds,
            "extrapolated": steps < full_steps, "peak_bytes": peak, "curve_point_s": curve_point,
            "curve_point_share": curve_point / (seconds / steps),
            "psnr": float(psnr(images[0], sharp)),
            "psnr_input": float(psnr(y[0].permute(1, 2, 0).cpu().numpy(), sharp)),
            "tiling": "none" if plan is None else f"{plan.num_tiles} tiles {plan.tile_h}x{plan.tile_w}, "
                                                  f"overlap {plan.overlap}, {plan.batch}/call"}


def markdown(rows: list[dict], command: str, device: torch.device) -> str:
    threads = rows[0]["threads"] or torch.get_num_threads()
    measured = next((r for r in rows if "cut" not in r), None)
    psnr_input = "–" if measured is None else f"{measured['psnr_input']:.2f} dB at {measured['width']}×" \
                                              f"{measured['height']}"
    head = [f"Command: `{command}`  ",
            f"Machine: {machine_name(device)} ({device.type}, {threads} threads), torch {torch.__version__}, "
            f"{datetime.date.today().isoformat()}  ",
            f"Peak memory: {'torch.cuda.max_memory_allocated' if device.type == 'cuda' else 'process peak RSS'}.",
            "",
            f"PSNR: of the result against the sharp scene (the input's: {psnr_input}); only where the whole preset "
            "ran.",
            "",
            "| preset | size × batch | mode | tiling | iterations run / full | NFE / image | ms / NFE | "
            "s / image (full) | images / s (full) | PSNR dB | peak memory | curve point: s (of an iteration) | "
            "warm-up s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines = []
    for r in rows:
        size = f"{r['width']}×{r['height']} × {r['batch']}"
        if "cut" in r:  # stopped by --budget, or failed
            lines.append(f"| {r['preset']} | {size} | {r['label']} | {r['cut']} |" + " |" * 9)
            continue
        mark = " (extrapolated)" if r["extrapolated"] else ""
        mode = r["precision"] + (", channels_last" if r["channels_last"] else "") + f", {r['norm_used']} norm" + \
            ("" if r["compile"] == "off" else f", compile {r['compile']}")
        lines.append(f"| {r['preset']} | {size} | {mode} | {r['tiling']} | "
                     f"{r['steps_run']} / {r['full_steps']} | {r['nfe_full']} | {r['ms_per_nfe']:.1f} | "
                     f"{r['seconds_per_image_full']:.3g}{mark} | {r['images_per_s_full']:.4g}{mark} | "
                     f"{'–' if r['extrapolated'] else format(r['psnr'], '.2f')} | "
                     f"{r['peak_bytes'] / 2**30:.2f} GiB | {r['curve_point_s']:.2f} ({r['curve_point_share']:.0%}) | "
                     f"{'–' if r['warm_up_s'] is None else format(r['warm_up_s'], '.1f')} |")
    return "\n".join(head + lines)


def parse_mode(text: str, norm: str, compile_mode: str) -> dict:
    """A --modes entry, PRECISION[+NORM][+COMPILE], as the case's mode, norm and compile; SystemExit where bad."""
    mode, *rest = text.split("+")
    case = {"mode": mode, "norm": norm, "compile": compile_mode}
    for part in rest:
        case["norm" if part in NORMS else "compile"] = part
    if mode not in MODES or case["norm"] not in NORMS or case["compile"] not in COMPILE_MODES or len(rest) > 2:
        raise SystemExit(f"bench_speed: mode '{text}': expected PRECISION[+NORM][+COMPILE] with PRECISION of "
                         f"{', '.join(MODES)}, NORM of {', '.join(NORMS)}, COMPILE of {', '.join(COMPILE_MODES)}")
    return case


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="default: the shipped checkpoint")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--presets", help="comma-separated (default: paper, and fast when it exists)")
    p.add_argument("--sizes", default="256x256,1680x1120", help="comma-separated WIDTHxHEIGHT")
    p.add_argument("--modes", help="comma-separated PRECISION[+NORM][+COMPILE]: fp32, bf16, fp16, optimised, e.g. "
                                   "bf16+split+reduce-overhead (default: fp32 on CPU, fp32,optimised on CUDA)")
    p.add_argument("--iterations", type=int, default=3, help="sampler iterations run per case (0: the full preset)")
    p.add_argument("--batch", type=int, default=1, help="same-size images sampled together")
    p.add_argument("--tile", type=int, default=None, help="force this tile size (default: automatic)")
    p.add_argument("--max-memory", type=float, default=None, help="activation budget in GiB (default: automatic)")
    p.add_argument("--norm", default="auto", choices=NORMS, help="GroupNorm reduction of the modes that name none")
    p.add_argument("--compile", default="off", choices=COMPILE_MODES,
                   help="torch.compile mode of the modes that name none")
    p.add_argument("--budget", type=float, default=0, metavar="S",
                   help="seconds for this whole invocation; a case still running then is stopped (0: no limit)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--output", help="also write the Markdown table and the raw JSON rows next to it")
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case and print its JSON
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    device = torch.device(args.device)
    presets = args.presets.split(",") if args.presets else [p for p in ("paper", "fast") if p in preset_names()]
    modes = args.modes.split(",") if args.modes else (["fp32", "optimised"] if device.type == "cuda" else ["fp32"])
    modes = {mode: parse_mode(mode, args.norm, args.compile) for mode in modes}
    command = "python scripts/bench_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    deadline = time.monotonic() + args.budget if args.budget else None
    rows, table = [], ""
    for preset in presets:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.lower().split("x"))
            for label, mode in modes.items():
                case = {"checkpoint": args.checkpoint, "device": args.device, "preset": preset, "height": height,
                        "width": width, **mode, "label": label, "iterations": args.iterations, "batch": args.batch,
                        "tile": args.tile, "max_memory": args.max_memory, "threads": args.threads}
                rows.append(run_subprocess(case, deadline))
                print(f"{preset} {size} {label}: " + (rows[-1].get("cut") or f"{rows[-1]['ms_per_nfe']:.1f} ms/NFE"),
                      file=sys.stderr)
                table = markdown(rows, command.strip(), device)
                if args.output:  # after every case: a run stopped from outside keeps what finished
                    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
                    Path(args.output).write_text(table + "\n")
                    Path(args.output).with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print(table)
    failed = [r for r in rows if r.get("cut", "").startswith("failed")]
    if failed:
        raise SystemExit(f"bench_speed: {len(failed)} case(s) failed (see the table)")


def run_subprocess(case: dict, deadline: float | None) -> dict:
    """One case's row, measured in a subprocess of its own; a row with `cut` where the deadline stopped it."""
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
        return {**case, "cut": "not run: --budget spent"}
    try:
        run = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True, text=True,
                             timeout=left)
    except subprocess.TimeoutExpired:
        return {**case, "cut": f"cut: --budget spent after {left:.0f} s"}
    if run.returncode:
        sys.stderr.write(run.stderr)
        last = next((line for line in reversed(run.stderr.splitlines()) if line.strip()), "")
        return {**case, "cut": f"failed: {last.strip()[:200]}"}
    return json.loads(run.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
