"""hidd-reconstruct: deblur defocused photos with a trained score prior.

  hidd-reconstruct --input photo.jpg --output results/one
  hidd-reconstruct --input blurred/ --target sharp/ --output results/run1 --compare
  hidd-reconstruct --input blurred/ --target sharp/ --output results/paper --preset paper
  hidd-reconstruct --input data/DPDD --dataset dpdd --output results/dpdd --checkpoint runs/x/checkpoints/latest.pt
  hidd-reconstruct --input blurred/ --target sharp/ --output results/dncnn --method dncnn
  hidd-reconstruct --input blurred/ --radius-maps maps/ --output results/known   (each photo's known defocus map)
  python scripts/reconstruct.py ...   (the same command, as the paper's code spells it)

Writes one PNG per input (same stem; 16-bit when the input was), config.yaml, metrics.csv,
TensorBoard curves (PSNR/SSIM against iteration when targets are given) under OUTPUT/tb, and with
--compare a side-by-side picture per photo (input | output | target) in OUTPUT/compare/ and a page
showing them all with their metrics, OUTPUT/index.html. An output folder inside the input folder
is left out of the search for inputs.
Each image's PNG and metrics row are written (atomically) as soon as it is done; after a kill,
the same command with --skip-existing finishes only the missing images.

Several GPUs or machines: launch the same command with torchrun, e.g.
  torchrun --nproc_per_node=4 -m hidd.cli.reconstruct --input big/ --output results/big
Each process deblurs its share of the photos still to do, dealt by pixel count so that the shares cost alike
(on the GPU of its local rank; gloo on CPU, NCCL on GPU),
writes those photos' PNGs and its own rows (metrics.rankR.csv until the end); rank 0 writes config.yaml,
merges the one metrics.csv in input order, prints the one table and the mean curves (each process writes
its photos' curves to OUTPUT/tb, one TensorBoard run). The outputs equal a single process's (on a CPU, one with
as many threads: torchrun gives each process OMP_NUM_THREADS=1), and --skip-existing resumes with any number of
processes. Every process exits with the run's status.

Where each photo's defocus is known (a depth sensor, a dual-pixel disparity, another estimator, a benchmark's truth),
--radius-maps DIR gives a per-pixel radius map per photo (DIR/STEM.npy) and --layers DIR a layered scene with
occlusion (DIR/STEM.npz); hidd.known_blur has the formats. A photo whose file is missing or does not fit fails alone.

A grayscale photo is deblurred as three equal channels by an RGB model and written back gray; with
the default preset a colour photo whose colour is at its noise level comes back gray too (as RGB).
metrics.csv's NFE is the photo's own: 12 with the default preset, 20 where it restarts its schedule
(a white misfit) or samples a too-noisy result again (sampler.noisy_retry_lambda), 0 where it reads in
focus; its `reason` says what bound its `share`. A photo's output does not depend on --batch-size.
A bad input file, or an image whose deblurring fails, is reported in one line and skipped.
Exit status: 0 all images written; 1 some inputs failed (the others were written);
2 usage error (bad option, config, checkpoint, --input or --output; nothing processed); 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys

from hidd.cli import ArgumentParser, one_line_errors


def presets_help() -> str:
    """The --help epilog: each sampler preset in one line."""
    from hidd.config import preset_summaries

    lines = [f"  {name:<14} {summary}" for name, summary in preset_summaries().items()]
    return "presets (--preset NAME; configs/presets/NAME.yaml):\n" + "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="hidd-reconstruct", description=__doc__, epilog=presets_help())
    p.add_argument("--input", required=True, help="a defocused image, a folder of them, or a dataset root")
    p.add_argument("--output", required=True, help="folder for the results (not the input folder itself)")
    p.add_argument("--target", help="folder of sharp images matched to the inputs by file stem")
    p.add_argument("--dataset", choices=["dpdd", "realblur", "ded", "auto"],
                   help="read --input as the root of a paired test set of this layout")
    known = p.add_mutually_exclusive_group()
    known.add_argument("--radius-maps", metavar="DIR",
                       help="each photo's KNOWN defocus radius map, DIR/STEM.npy (float H×W, px; STEM its result's "
                            "name, sub/a.jpg → sub_a): used instead of the blind estimate (default preset then: depth)")
    known.add_argument("--layers", metavar="DIR",
                       help="each photo's KNOWN layered scene, DIR/STEM.npz (alphas L×H×W in [0, 1] far to near, radii "
                            "L px): the data step blurs with occlusion (default preset then: depth)")
    p.add_argument("--method", default="hidd", choices=["hidd", "dncnn", "ffdnet", "cyclegan"],
                   help="hidd: the diffusion prior and its sampler (default); dncnn, ffdnet, cyclegan: the paper's "
                        "comparison networks (hidd-train-baseline), one forward pass")
    p.add_argument("--checkpoint", help="trained model (default: checkpoints/hidd-default.pt, or checkpoints/METHOD.pt "
                                        "with --method)")
    p.add_argument("--config", help="YAML applied on top of the checkpoint's config (usually a sampler section)")
    p.add_argument("--preset", help="named sampler preset from configs/presets/, listed below (default: fast, unless "
                                    "--config gives a sampler)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value, e.g. --set sampler.num_steps=200 (repeatable)")
    p.add_argument("--save-every", type=int, default=0, metavar="K",
                   help="also save every K-th intermediate iterate under OUTPUT/iterates/NAME/")
    p.add_argument("--curve-every", type=int, default=0, metavar="K",
                   help="PSNR/SSIM-vs-iteration resolution with targets (default: about 100 points, fewer where "
                        "they would cost more than 10%% of the sampling time)")
    p.add_argument("--compare", action="store_true",
                   help="also write OUTPUT/compare/NAME.png (input | output | target) and OUTPUT/index.html, a page "
                        "showing every photo's picture with its metrics")
    p.add_argument("--skip-existing", action="store_true",
                   help="resume: keep the images already in OUTPUT (PNG and metrics.csv row) and do only the others; "
                        "use the same options and device as the interrupted run (its results depend on them)")
    p.add_argument("--batch-size", default="auto",
                   help="same-size images sampled together (a photo's output is the same in any batch); auto: 1 on "
                        "a CPU (each photo written as soon as it is done), 4 on a GPU")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available; under "
                                                 "torchrun each process takes the GPU of its local rank)")
    p.add_argument("--prefetch", choices=["on", "off"], default="on",
                   help="read and estimate the next batch in a background thread while this one is sampled (the "
                        "outputs are the same)")
    p.add_argument("--seed", type=int, default=0,
                   help="sampler noise seed: each photo draws its noise from a generator of its own seeded with it")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="evaluate the network on N×N tiles (a multiple of the network's size multiple, 8 for the "
                        "default model); 0: never tile (default: tile automatically beyond --max-memory)")
    p.add_argument("--tile-overlap", type=int, default=None, metavar="M",
                   help="pixels shared by neighbouring tiles, blended smoothly "
                        "(default: a quarter of the tile, ≤ 64)")
    p.add_argument("--tile-batch", type=int, default=4, metavar="K", help="tiles per network call")
    p.add_argument("--max-memory", type=float, default=None, metavar="GB",
                   help="memory budget of the network's activations in GiB "
                        "(default: 4 on CPU, 80%% of the free GPU memory)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16", "auto"], default="fp32",
                   help="network precision; auto: bf16 on Ampere+ GPUs, fp16 on older ones, fp32 on CPU")
    p.add_argument("--compile", choices=["off", "default", "max-autotune", "reduce-overhead"], default="off",
                   help="torch.compile the network (the first images wait for the compilation): default, "
                        "max-autotune (longer), reduce-overhead (+ CUDA graphs: small images on a GPU); dynamic "
                        "shapes for photos above 512x512, each of its own size (hidd.models.compile)")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    with one_line_errors("hidd-reconstruct", interrupted="the images written so far are complete; run the same "
                                             "command with --skip-existing to do only the rest"):
        from hidd.distributed import launched_rank  # heavy imports only when needed
        from hidd.reconstruct import run

        failures = run(args)
    if failures:  # each was printed once, as it happened (under torchrun: by the process that had it)
        if launched_rank() == 0:
            print(f"hidd-reconstruct: {len(failures)} input(s) failed (see the lines above); the others were written",
                  file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
