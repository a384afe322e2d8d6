"""GroupNorm alone: PyTorch's kernel (native) against the split reduction (hidd.models.norm), per network evaluation.

  python scripts/bench_groupnorm.py --device cuda                       # the shipped network at 1680x1120, batch 1
  python scripts/bench_groupnorm.py --device cpu --threads 2 --size 840x560 --dtypes fp32

The score network's GroupNorms are found by running it once at --size on fake tensors (shapes, no data) with
hooks; each distinct input shape (channels, H, W) is then timed alone, native and split, at batch 1, in the layout
the network runs in (contiguous for fp32 on CUDA, channels_last otherwise: hidd.precision) and dtype (bf16: the
activation in bf16 under autocast, normalised in fp32 as nn.GroupNorm is under CUDA autocast). "per NFE" is each
shape's count in one network evaluation, and the last row of a dtype the GroupNorm time of one evaluation; "max diff"
is split against native. Prints (and with --output writes) one Markdown table.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import sys
import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import machine_name, synchronize  # noqa: E402  (sibling script: the benchmarks' device helpers)

from hidd.models.norm import GroupNorm, split_group_norm  # noqa: E402
from hidd.prior import load_prior  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def norm_shapes(model: torch.nn.Module, height: int, width: int) -> Counter:
    """(channels, groups, H, W) of each GroupNorm input of one evaluation at height×width, and its count."""
    shapes = Counter()
    model = copy.deepcopy(model).cpu()
    for m in model.modules():
        if isinstance(m, GroupNorm):
            m.register_forward_hook(lambda m, inp, out: shapes.update([(m.num_channels, m.num_groups,
                                                                        *inp[0].shape[2:])]))
    with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
        model(torch.zeros(1, model.conv_in.in_channels, height, width), torch.ones(1))
    return shapes


def time_norm(fn, x: torch.Tensor, device: torch.device, repeats: int) -> float:
    """Seconds per call of fn(x), the fastest of `repeats` after one warm-up call."""
    fn(x)
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn(x)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def measure(shape, count: int, dtype: torch.dtype, device: torch.device, repeats: int) -> dict:
    channels, groups, height, width = shape
    channels_last = device.type != "cuda" or dtype != torch.float32  # the layout hidd.precision runs it in
    x = torch.randn(1, channels, height, width, device=device).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(channels, device=device), torch.randn(channels, device=device)

    def native(t):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            return F.group_norm(t.float(), groups, weight, bias, 1e-6)  # (autocast would cast it: CUDA's policy)

    def split(t):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            return split_group_norm(t, groups, weight, bias, 1e-6)

    with torch.no_grad():
        error = float((native(x) - split(x)).abs().max())
        times = {name: time_norm(fn, x, device, repeats) for name, fn in (("native", native), ("split", split))}
    return {"shape": shape, "count": count, "channels_last": channels_last, "error": error, **times}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="default: the shipped checkpoint")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", default="1680x1120", help="WIDTHxHEIGHT of the photo (multiples of the network's)")
    p.add_argument("--dtypes", default="fp32,bf16", help="comma-separated fp32,bf16")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per shape (the fastest is kept)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--output", help="also write the Markdown table there")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    width, height = (int(v) for v in args.size.lower().split("x"))
    dtypes = args.dtypes.split(",")
    if set(dtypes) - set(DTYPES):
        raise SystemExit(f"bench_groupnorm: --dtypes takes {', '.join(DTYPES)}, got {args.dtypes}")
    model = load_prior(args.checkpoint).model
    if height % model.size_multiple or width % model.size_multiple:
        raise SystemExit(f"bench_groupnorm: --size {args.size}: W and H must be multiples of {model.size_multiple}")
    shapes = norm_shapes(model, height, width)
    lines = [f"Command: `python scripts/bench_groupnorm.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ",
             f"Machine: {machine_name(device)} ({device.type}, {torch.get_num_threads()} threads), torch "
             f"{torch.__version__}, {datetime.date.today().isoformat()}",
             "",
             "| dtype | channels × H × W (groups) | per NFE | layout | native ms | split ms | speed-up | max diff |",
             "|---|---|---|---|---|---|---|---|"]
    for name in dtypes:
        total = {"native": 0.0, "split": 0.0}
        for shape, count in sorted(shapes.items(), key=lambda item: -item[0][2] * item[0][3] * item[0][0]):
            r = measure(shape, count, DTYPES[name], device, args.repeats)
            for key in total:
                total[key] += count * r[key]
            c, g, h, w = shape
            lines.append(f"| {name} | {c} × {h} × {w} ({g}) | {count} | "
                         f"{'channels_last' if r['channels_last'] else 'contiguous'} | {1000 * r['native']:.2f} | "
                         f"{1000 * r['split']:.2f} | {r['native'] / r['split']:.2f}× | {r['error']:.1e} |")
            print(lines[-1], file=sys.stderr)
        lines.append(f"| {name} | **all, one evaluation** | {sum(shapes.values())} | | {1000 * total['native']:.1f} | "
                     f"{1000 * total['split']:.1f} | {total['native'] / total['split']:.2f}× | |")
    table = "\n".join(lines)
    print(table)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(table + "\n")


if __name__ == "__main__":
    main()
