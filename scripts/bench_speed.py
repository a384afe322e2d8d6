"""Sampling speed: ms per network evaluation (NFE), seconds per image, images/s, peak memory, and the result's PSNR.

  python scripts/bench_speed.py                                   # paper (+ fast) presets, 256² and 1680x1120
  python scripts/bench_speed.py --device cuda --compile --batch 8
  python scripts/bench_speed.py --device cpu --threads 1 --sizes 256x256 --presets fast
  python scripts/bench_speed.py --device cpu --threads 2 --sizes 256x256 --presets fast --iterations 0 --modes fp32,bf16

Modes: `fp32`, `bf16`, `fp16` (hidd.precision: autocast of the network) and `optimised` (precision auto: on CUDA
bf16, or fp16 before compute capability 8, with channels_last; torch.compile with --compile); default fp32 on a CPU,
fp32 and optimised on CUDA. Every mode tiles the network automatically when an image would exceed the memory budget
(--max-memory, --tile force it); the table says how. Each case runs in its own subprocess, so peak RSS is per case.
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
from hidd.prior import load_prior, preset_names
from hidd.tiling import TilingConfig, round_up

BLUR_RADIUS = 4.0  # disk radius of the synthetic defocus, px
MODES = ("fp32", "bf16", "fp16", "optimised")  # hidd.precision's fixed precisions, and 'auto' (+ --compile)


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
    deblurrer = Deblurrer(prior, tiling=tiling, precision=precision)
    if case["mode"] == "optimised" and case["compile"]:
        prior.model = torch.compile(prior.model)
    y = blurred_scene(case["height"], case["width"], case["batch"]).to(device)

    if device.type == "cuda":  # a short run first, same network and shapes: compilation, cuDNN autotuning
        warm = prior_with(min(2, steps))
        warm.model = prior.model
        Deblurrer(warm, tiling=tiling, precision=precision)(y, seed=0)
    synchronize(device)
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
    head = [f"Command: `{command}`  ",
            f"Machine: {machine_name(device)} ({device.type}, {threads} threads), torch {torch.__version__}, "
            f"{datetime.date.today().isoformat()}  ",
            f"Peak memory: {'torch.cuda.max_memory_allocated' if device.type == 'cuda' else 'process peak RSS'}.",
            "",
            f"PSNR: of the result against the sharp scene (the input's: {rows[0]['psnr_input']:.2f} dB at "
            f"{rows[0]['width']}×{rows[0]['height']}); only where the whole preset ran.",
            "",
            "| preset | size × batch | mode | tiling | iterations run / full | NFE / image | ms / NFE | "
            "s / image (full) | images / s (full) | PSNR dB | peak memory | curve point: s (of an iteration) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines = []
    for r in rows:
        mark = " (extrapolated)" if r["extrapolated"] else ""
        mode = r["precision"] + (", channels_last" if r["channels_last"] else "") + \
            (", compile" if r["mode"] == "optimised" and r["compile"] else "")
        lines.append(f"| {r['preset']} | {r['width']}×{r['height']} × {r['batch']} | {mode} | {r['tiling']} | "
                     f"{r['steps_run']} / {r['full_steps']} | {r['nfe_full']} | {r['ms_per_nfe']:.1f} | "
                     f"{r['seconds_per_image_full']:.1f}{mark} | {r['images_per_s_full']:.4g}{mark} | "
                     f"{'–' if r['extrapolated'] else format(r['psnr'], '.2f')} | "
                     f"{r['peak_bytes'] / 2**30:.2f} GiB | {r['curve_point_s']:.2f} ({r['curve_point_share']:.0%}) |")
    return "\n".join(head + lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="default: the shipped checkpoint")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--presets", help="comma-separated (default: paper, and fast when it exists)")
    p.add_argument("--sizes", default="256x256,1680x1120", help="comma-separated WIDTHxHEIGHT")
    p.add_argument("--modes", help="comma-separated fp32,bf16,fp16,optimised (default: fp32 on CPU, fp32,optimised "
                                   "on CUDA)")
    p.add_argument("--iterations", type=int, default=3, help="sampler iterations run per case (0: the full preset)")
    p.add_argument("--batch", type=int, default=1, help="same-size images sampled together")
    p.add_argument("--tile", type=int, default=None, help="force this tile size (default: automatic)")
    p.add_argument("--max-memory", type=float, default=None, help="activation budget in GiB (default: automatic)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network in the optimised mode")
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
    if set(modes) - set(MODES):
        raise SystemExit(f"bench_speed: --modes takes {', '.join(MODES)}, got {args.modes}")
    rows = []
    for preset in presets:
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.lower().split("x"))
            for mode in modes:
                case = {"checkpoint": args.checkpoint, "device": args.device, "preset": preset, "height": height,
                        "width": width, "mode": mode, "iterations": args.iterations, "batch": args.batch,
                        "tile": args.tile, "max_memory": args.max_memory, "compile": args.compile,
                        "threads": args.threads}
                run = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True,
                                     text=True)
                if run.returncode:
                    sys.stderr.write(run.stderr)
                    raise SystemExit(f"bench_speed: case {preset} {size} {mode} failed")
                rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
                print(f"{preset} {size} {mode}: {rows[-1]['ms_per_nfe']:.1f} ms/NFE", file=sys.stderr)
    command = "python scripts/bench_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = markdown(rows, command.strip(), device)
    print(table)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(table + "\n")
        Path(args.output).with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
