"""Where a reconstruction's time goes: blind estimation, network, the sampler's own steps (the proximal step among
them), the no-harm guard.

    python scripts/profile_sampler.py --device cpu --threads 2 --sizes 256x256 --presets fast
    python scripts/profile_sampler.py --device cpu --threads 2 --sizes 256x256 --presets fast --precision bf16
    python scripts/profile_sampler.py --device cuda --output results/profile.md

Each case runs the shipped checkpoint once to warm up, then once timed by phase: each phase's calls are
wrapped with a device synchronisation before and after (so their times add up; the syncs cost a little),
and the rest of the wall time is the sampler's own work (proximal/FFT steps, timed apart too, noise draws,
calibration, Python, host synchronisations). Then one more run under torch.profiler gives the
operators with the most self time (device time on CUDA). `--iterations` caps the sampler's levels,
as in scripts/bench_speed.py. Writes one Markdown report.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hidd.operators  # noqa: E402
import hidd.stages.estimate  # noqa: E402
import hidd.stages.select  # noqa: E402
from bench_speed import blurred_scene, machine_name, synchronize  # noqa: E402
from hidd.deblur import Deblurrer  # noqa: E402
from hidd.prior import load_prior  # noqa: E402

PHASES = {"blind estimation (PSF, noise)": (hidd.stages.estimate, "measurement_model"),  # where each phase is called
          "no-harm guard": (hidd.stages.select, "back_off")}
PARTS = {"proximal step (FFT, free border)": (hidd.operators.UniformBlur, "prox")}  # timed within the sampler's steps


class PhaseClock:
    """Accumulates synchronised wall time of wrapped callables, by phase name."""

    def __init__(self, device: torch.device):
        self.device, self.seconds = device, {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.sync()
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        return timed

    def sync(self):
        synchronize(self.device)


def profile_case(preset: str, height: int, width: int, device: torch.device, iterations: int, top: int,
                 checkpoint: str | None = None, precision: str = "fp32") -> str:
    prior = load_prior(checkpoint, preset=preset, device=device)
    if 0 < iterations < prior.config.sampler.num_steps:  # fewer levels than the preset's
        prior = load_prior(checkpoint, preset=preset, overrides=[f"sampler.num_steps={iterations}"], device=device)
    deblurrer = Deblurrer(prior, precision=precision)
    y = blurred_scene(height, width, 1).to(device)
    deblurrer(y, seed=0)  # warm-up: cuDNN autotuning, allocator, lazy imports
    clock = PhaseClock(device)
    originals = {place: getattr(*place) for place in (PHASES | PARTS).values()}
    network = deblurrer.score
    try:
        for name, place in (PHASES | PARTS).items():
            setattr(*place, clock.wrap(name, originals[place]))
        deblurrer.score = clock.wrap("network", network)
        clock.sync()
        start = time.perf_counter()
        result = deblurrer(y, seed=0)
        clock.sync()
        total = time.perf_counter() - start
    finally:
        for (module, attr), fn in originals.items():
            setattr(module, attr, fn)
        deblurrer.score = network
    rows = [(name, clock.seconds.get(name, 0.0)) for name in ["network", *PHASES]]
    rows.append(("sampler's own steps (prox/FFT, noise, calibration, host syncs, Python)",
                 total - sum(s for _, s in rows)))
    lines = [f"### {preset}, {width}×{height}, {result.nfe} NFE ({prior.config.sampler.num_steps} levels), "
             f"{deblurrer.precision.name}", "",
             f"Wall time {total:.2f} s ({1000 * total / max(result.nfe, 1):.1f} ms per NFE).", "",
             "| phase | seconds | share |", "|---|---|---|"]
    lines += [f"| {name} | {seconds:.3f} | {100 * seconds / total:.0f} % |" for name, seconds in rows]
    lines += ["", "Of the sampler's own steps: " + ", ".join(f"{name} {clock.seconds.get(name, 0.0):.3f} s "
                                                          f"({100 * clock.seconds.get(name, 0.0) / total:.0f} %)"
                                                          for name in PARTS) + "."]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        deblurrer(y, seed=0)
    clock.sync()
    keys = ["self_device_time_total", "self_cuda_time_total"] if device.type == "cuda" else ["self_cpu_time_total"]
    for key in keys:  # the device key's name changed across torch versions
        try:
            table = prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=48)
            break
        except (AttributeError, KeyError, ValueError):
            table = f"(no {key})"
    lines += ["", f"torch.profiler, top {top} operators by {key}:", "", "```", table.strip(), "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="default: the shipped checkpoint")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--presets", default="fast,paper")
    p.add_argument("--sizes", default="256x256,1680x1120", help="comma-separated WIDTHxHEIGHT")
    p.add_argument("--iterations", type=int, default=0, help="cap on the sampler's levels (0: the full preset, "
                                                             "except paper, which is capped at 10)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--precision", default="fp32", help="the network's: fp32, bf16, fp16 or auto (hidd.precision)")
    p.add_argument("--output", type=Path, default=Path("results/profile.md"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = f"{machine_name(device)} ({device.type}, {torch.get_num_threads()} threads)"
    report = [f"# Sampler profile: {name}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}", "",
              f"Command: `python scripts/profile_sampler.py {' '.join(argv if argv is not None else sys.argv[1:])}`", ""]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for preset in args.presets.split(","):
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.lower().split("x"))
            iterations = 10 if preset == "paper" and not args.iterations else args.iterations
            report.append(profile_case(preset, height, width, device, iterations, args.top, args.checkpoint,
                                       args.precision))
            args.output.write_text("\n".join(report))
            print(report[-1], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
