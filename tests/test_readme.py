"""Every command in README.md's ```sh blocks parses as written, and the cheap ones run as written.

The cheap ones run in README order, in process, in a folder that holds what the README assumes a user has:
`photo.jpg`, and `blurred/` with `sharp/` (small camera-made pairs). The others (a dataset, hours of
sampling, several processes, the two make targets) are parsed only: their options must be the tool's.
A command added to the README must be put in RUN or PARSE_ONLY here, so that nobody forgets to decide.
"""
import argparse
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hidd.cli.reconstruct
import hidd.cli.train
import hidd.cli.train_baseline
from conftest import load_script, read_csv, synthetic_photo
from hidd.camera import Camera, LensPSF
from hidd.imageio import write_image

README = Path(__file__).resolve().parent.parent / "README.md"
RUN = [
    "hidd-reconstruct --input photo.jpg --output results/one",
    "hidd-reconstruct --input blurred/ --target sharp/ --output results/run1 --compare",
    "hidd-reconstruct --input blurred/ --target sharp/ --output results/dncnn --method dncnn",
    "python scripts/reconstruct.py --input photo.jpg --output results/two",
    "hidd-train --config tiny --workdir runs/tiny",
    "hidd-train --workdir runs/tiny --resume",
    "python scripts/evaluate.py results/run1 --target sharp/ --error-maps results/run1/errors",
]
PARSE_ONLY = {  # command → why it is not run here
    "make demo": "80 s; the demo test of the Makefile is `make demo` itself",
    "make test": "this is it",
    "hidd-reconstruct --input /data/DPDD --dataset dpdd --output results/dpdd --checkpoint "
    "runs/rgb/checkpoints/latest.pt": "needs DPDD and a trained run",
    "hidd-reconstruct --input blurred/ --output results/paper --preset paper --save-every 100": "hours on a CPU",
    "tensorboard --logdir runs": "another program",
    "python scripts/prepare_corpus.py": "runs apt-get download (tests/test_bench_scripts.py runs its parts)",
    "hidd-train-baseline --config dncnn --workdir runs/dncnn": "minutes (tests/test_baselines.py trains each)",
    "hidd-train --config prior_s --workdir runs/s --init checkpoints/hidd-default.pt": "a GPU run on data/corpus",
    "hidd-train --config prior_m --workdir runs/m": "a GPU run on data/corpus",
    "python scripts/eval_denoise.py shipped=checkpoints/hidd-default.pt s=runs/s/checkpoints/latest.pt":
        "needs a trained run",
    "hidd-train --config rgb256 --workdir runs/rgb --set data.roots=[data/corpus/tiles,/data/DPDD]": "data, a GPU",
    "torchrun --nproc_per_node=4 scripts/train.py --config rgb256 --workdir runs/rgb2": "four processes",
    "torchrun --nproc_per_node=4 scripts/reconstruct.py --input big/ --output results/big": "four processes",
    "python scripts/ablation.py --input blurred/ --target sharp/ --output results/ablation": "10,000 NFE per image",
    "python scripts/make_benchmark.py --kind camera": "writes data/camera (tests/test_bench_scripts.py makes one)",
    "python scripts/bench_quality.py --benchmark data/camera --methods blurred wiener rl fast": "minutes",
    "python scripts/train_defocus_map.py --config defocus_map --workdir runs/map":
        "50 min on a CPU thread (tests/test_defocus_map_learned.py trains a tiny one)",
    "python scripts/train_defocus_map.py --workdir runs/map --resume": "needs that run",
    "python scripts/train_defocus_map.py --config defocus_map --workdir runs/map2 --init checkpoints/defocus_map.pt "
    "--set training.steps=10000 --set training.quantile=0.3": "about 100 min on a CPU thread",
    "python scripts/train_defocus_map.py --workdir runs/map --resume --set training.steps=4000 "
    "--set training.quantile=0.3": "needs that run; 22 min",
}
ENTRY_POINTS = {"hidd-reconstruct": hidd.cli.reconstruct.main, "hidd-train": hidd.cli.train.main,
                "hidd-train-baseline": hidd.cli.train_baseline.main}


def readme_commands() -> list[str]:
    """The commands of the README's ```sh blocks, one per line, in order: comments and quotes stripped."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return [" ".join(shlex.split(line, comments=True)) for block in blocks for line in block.splitlines()
            if shlex.split(line, comments=True)]


def entry_point(words: list[str]):
    """(the main function, its argv) of a command: an installed entry point or python scripts/NAME.py."""
    if words[0] == "torchrun":
        words = words[next(i for i, w in enumerate(words) if w.endswith(".py")) - 1:]
        words[0] = "python"
    if words[0] in ENTRY_POINTS:
        return ENTRY_POINTS[words[0]], words[1:]
    assert words[0] == "python" and words[1].startswith("scripts/"), words
    return load_script(Path(words[1]).stem).main, words[2:]


class Parsed(Exception):
    """Raised instead of running, once a command's options have parsed."""


def test_every_readme_command_is_run_or_parsed_here():
    assert sorted(readme_commands()) == sorted(RUN + list(PARSE_ONLY))


@pytest.mark.parametrize("command", [c for c in PARSE_ONLY if not c.startswith(("make ", "tensorboard "))])
def test_a_readme_command_that_is_not_run_here_parses_as_written(command, monkeypatch):
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        parse(self, args, namespace)
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    main, argv = entry_point(shlex.split(command))
    with pytest.raises(Parsed):
        main(argv)


def test_the_make_targets_and_tools_the_readme_names_exist():
    makefile = (README.parent / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)


def test_the_cheap_readme_commands_run_as_written_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    camera = Camera(psf=LensPSF(2.0))
    photo = camera.render(torch.from_numpy(synthetic_photo(0, 64)).permute(2, 0, 1)[None])[0]
    Image.fromarray((photo.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save("photo.jpg", quality=90)
    for i in range(2):
        sharp = synthetic_photo(i + 1, 48)
        write_image(tmp_path / "sharp" / f"im{i}.png", sharp)
        blurred = camera.render(torch.from_numpy(sharp).permute(2, 0, 1)[None])[0]
        write_image(tmp_path / "blurred" / f"im{i}.png", blurred.permute(1, 2, 0).numpy())
    for command in [c for c in readme_commands() if c in RUN]:  # in README order
        main, argv = entry_point(shlex.split(command))
        try:
            main(argv)
        except SystemExit as e:
            assert e.code in (0, None), f"{command}: exit status {e.code}: {capsys.readouterr().err[-500:]}"
    for folder in ("results/one", "results/two"):
        assert (tmp_path / folder / "photo.png").is_file()
    assert (tmp_path / "results/run1/index.html").is_file() and (tmp_path / "results/dncnn/im0.png").is_file()
    assert (tmp_path / "runs/tiny/checkpoints/latest.pt").is_file()
    assert [row["name"] for row in read_csv(tmp_path / "results/run1/evaluation.csv")] == ["im0", "im1", "mean"]
    assert (tmp_path / "results/run1/errors/im0.png").is_file()
