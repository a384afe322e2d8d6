import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_tiny_checkpoint, read_csv, synthetic_photo
from hidd.camera import Camera, LensPSF
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.deblur import Deblurrer
from hidd.stages.layout import pad_to_multiple
from hidd.imageio import read_image, write_image
from hidd.metrics import psnr
from hidd.prior import load_prior

REPO = Path(__file__).resolve().parent.parent
# Data consistency alone (no network): the iterate converges to y, which makes layout bugs visible.
DC_ONLY = ["sampler.predictor=none", "sampler.corrector=none", "sampler.consistency=interpolate",
           "sampler.alpha=0.5", "sampler.alpha_after_predictor=0", "sampler.minmax_normalize=false",
           "sampler.num_steps=40"]


def test_pad_to_multiple_round_trip():
    x = torch.rand(2, 3, 37, 45)
    padded, (h, w) = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (40, 48) and (h, w) == (37, 45)
    assert torch.equal(padded[..., :h, :w], x)
    small, _ = pad_to_multiple(torch.rand(1, 1, 9, 9), 16)  # pad larger than the image: replicate
    assert small.shape[-2:] == (16, 16)


def test_odd_sizes_come_back_aligned(tiny_checkpoint):
    prior = load_prior(tiny_checkpoint, preset="paper", overrides=DC_ONLY)
    y = torch.rand(2, 3, 37, 45)
    out = Deblurrer(prior)(y, seed=0)
    assert out.images.shape == y.shape and out.nfe == 0
    assert torch.allclose(out.images, y, atol=1e-4)


def test_one_channel_model_runs_per_colour_channel(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "gray.pt", "model.channels=1")
    prior = load_prior(ckpt, preset="ablation-pdc", overrides=["sampler.num_steps=3"])
    seen = []
    prior.model.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape)))
    y = torch.rand(2, 3, 32, 40)
    out = Deblurrer(prior)(y, seed=0)
    assert out.images.shape == (2, 3, 32, 40)
    assert seen and all(shape == (6, 1, 32, 40) for shape in seen)  # 2 images × 3 channels, batched
    # Each colour channel is restored as its own grayscale image: channel 1 of image 0 is unaffected
    # by the other channels' content.
    y2 = y.clone()
    y2[:, 0] = torch.rand_like(y2[:, 0])
    prior_dc = load_prior(ckpt, preset="paper", overrides=DC_ONLY)
    a, b = Deblurrer(prior_dc)(y, seed=0).images, Deblurrer(prior_dc)(y2, seed=0).images
    assert torch.allclose(a[:, 1:], b[:, 1:], atol=1e-5) and not torch.allclose(a[:, 0], b[:, 0])


def _pairs(folder: Path, n=2, size=32):
    for i in range(n):
        sharp = synthetic_photo(i, size)
        write_image(folder / "sharp" / f"im{i}.png", sharp)
        write_image(folder / "blurred" / f"im{i}.png", (sharp * 0.8 + 0.1))


def test_bad_inputs_are_reported_and_others_processed(tiny_checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    write_image(inputs / "good.png", synthetic_photo(0, 32))
    write_image(inputs / "tiny.png", synthetic_photo(2, 32)[:5, :5])
    (inputs / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    from skimage.io import imsave
    imsave(inputs / "alpha.png", (np.random.rand(32, 32, 4) * 255).astype(np.uint8), check_contrast=False)
    with pytest.raises(SystemExit) as e:
        reconstruct_main(["--input", str(inputs), "--output", str(tmp_path / "out"), "--checkpoint",
                          str(tiny_checkpoint), "--preset", "ablation-pdc", "--set", "sampler.num_steps=2"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for name, problem in [("tiny.png", "at least 16x16"), ("corrupt.png", "cannot be decoded"),
                          ("alpha.png", "alpha")]:
        assert any(name in line and problem in line for line in err.splitlines()), (name, err)
    assert (tmp_path / "out" / "good.png").is_file()
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["good.png"]


def test_a_grayscale_photo_is_deblurred_by_an_rgb_model_and_written_back_gray(tiny_checkpoint, tmp_path, capsys):
    sharp = synthetic_photo(1, 32)[..., :1]
    blurred = Camera(psf=LensPSF(2.0)).render(torch.from_numpy(sharp).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    write_image(tmp_path / "sharp" / "gray.png", sharp)
    write_image(tmp_path / "blurred" / "gray.png", blurred)
    write_image(tmp_path / "blurred" / "colour.png", synthetic_photo(2, 32))  # batched with it
    write_image(tmp_path / "sharp" / "colour.png", synthetic_photo(2, 32))
    reconstruct_main(["--input", str(tmp_path / "blurred"), "--target", str(tmp_path / "sharp"), "--output",
                      str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint), "--preset", "ablation-pdc",
                      "--set", "sampler.num_steps=2", "--batch-size", "2"])
    out = read_image(tmp_path / "out" / "gray.png").pixels
    assert out.shape == (32, 32, 1) and read_image(tmp_path / "out" / "colour.png").pixels.shape == (32, 32, 3)
    row = next(r for r in csv.DictReader(open(tmp_path / "out" / "metrics.csv")) if r["name"] == "gray")
    stored, sharp = (read_image(tmp_path / folder / "gray.png").pixels for folder in ("blurred", "sharp"))  # 8 bits
    assert float(row["psnr_input"]) == pytest.approx(psnr(stored, sharp), abs=1e-3)
    assert float(row["psnr"]) == pytest.approx(psnr(out, sharp), abs=0.05)  # the gray result, as written
    assert float(row["psnr"]) != pytest.approx(float(row["psnr_input"]), abs=0.05)  # and it was deblurred
    write_image(tmp_path / "sharp" / "gray.png", synthetic_photo(1, 32))  # a colour target for the gray photo
    with pytest.raises(SystemExit) as exit_status:
        reconstruct_main(["--input", str(tmp_path / "blurred"), "--target", str(tmp_path / "sharp"), "--output",
                          str(tmp_path / "again"), "--checkpoint", str(tiny_checkpoint), "--preset", "ablation-pdc",
                          "--set", "sampler.num_steps=2"])
    assert exit_status.value.code == 1 and "target is 32x32x3 but the input is 32x32x1" in capsys.readouterr().err


def test_the_output_may_not_be_the_input_folder_but_may_lie_inside_it_and_is_never_read(tiny_checkpoint, tmp_path,
                                                                                        capsys):
    _pairs(tmp_path)
    for out, flag in ((tmp_path / "blurred", "--input"), (tmp_path / "sharp", "--target")):
        with pytest.raises(SystemExit) as e:
            reconstruct_main(["--input", str(tmp_path / "blurred"), "--target", str(tmp_path / "sharp"),
                              "--output", str(out), "--checkpoint", str(tiny_checkpoint)])
        assert e.value.code == 2 and f"is the {flag} folder itself" in capsys.readouterr().err
    inside = tmp_path / "blurred" / "results"
    for again in ([], ["--skip-existing"]):  # the second finds the first's outputs inside its input and leaves them out
        reconstruct_main(["--input", str(tmp_path / "blurred"), "--target", str(tmp_path / "sharp"), "--output",
                          str(inside), "--checkpoint", str(tiny_checkpoint), "--set", "sampler.num_steps=2", *again])
        assert "are not read as inputs or targets" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "blurred").iterdir()) == ["im0.png", "im1.png", "results"]
    assert sorted(row["name"] for row in read_csv(inside / "metrics.csv")) == ["im0", "im1"]


def test_a_single_photo_may_be_deblurred_next_to_itself_but_never_over_itself(tiny_checkpoint, tmp_path, capsys):
    write_image(tmp_path / "photos" / "photo.png", synthetic_photo(0, 32))
    write_image(tmp_path / "photos" / "other.png", synthetic_photo(1, 32))
    with pytest.raises(SystemExit) as e:  # photos/photo.png would be its own result
        reconstruct_main(["--input", str(tmp_path / "photos" / "photo.png"), "--output", str(tmp_path / "photos"),
                          "--checkpoint", str(tiny_checkpoint)])
    assert e.value.code == 2 and "would overwrite an input or target" in capsys.readouterr().err
    # the README's first command: a photo in the current folder, results in a folder below it
    reconstruct_main(["--input", str(tmp_path / "photos" / "photo.png"), "--output",
                      str(tmp_path / "photos" / "results" / "one"), "--checkpoint", str(tiny_checkpoint),
                      "--set", "sampler.num_steps=2"])
    assert (tmp_path / "photos" / "results" / "one" / "photo.png").is_file()
    assert read_csv(tmp_path / "photos" / "results" / "one" / "metrics.csv")[0]["name"] == "photo"


def test_missing_default_checkpoint_or_unknown_preset_is_one_line(tiny_checkpoint, tmp_path, capsys):
    _pairs(tmp_path)
    with pytest.raises(SystemExit):
        reconstruct_main(["--input", str(tmp_path / "blurred"), "--output", str(tmp_path / "o"),
                          "--checkpoint", str(tiny_checkpoint), "--preset", "nope"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown preset" in err and "paper" in err


def test_sixteen_bit_input_gives_sixteen_bit_output(tiny_checkpoint, tmp_path):
    write_image(tmp_path / "in" / "deep.png", synthetic_photo(3, 24), bit_depth=16)
    reconstruct_main(["--input", str(tmp_path / "in" / "deep.png"), "--output", str(tmp_path / "out"),
                      "--checkpoint", str(tiny_checkpoint), "--preset", "paper", *sum((["--set", s] for s in DC_ONLY), [])])
    out = read_image(tmp_path / "out" / "deep.png")
    assert out.bit_depth == 16 and out.pixels.shape == (24, 24, 3)


def test_dpdd_layout_through_the_cli(tiny_checkpoint, tmp_path):
    root = tmp_path / "DPDD"
    for i in range(2):
        sharp = synthetic_photo(i, 32)
        write_image(root / "test_c" / "target" / f"{i}.png", sharp, bit_depth=16)
        write_image(root / "test_c" / "source" / f"{i}.png", sharp * 0.9, bit_depth=16)
    reconstruct_main(["--input", str(root), "--dataset", "dpdd", "--output", str(tmp_path / "out"),
                      "--checkpoint", str(tiny_checkpoint), "--preset", "paper", *sum((["--set", s] for s in DC_ONLY), [])])
    rows = (tmp_path / "out" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("name,")
    # DC-only output equals the input, so its PSNR equals the input's.
    name, *_, psnr_in, ssim_in, psnr, ssim = rows[1].split(",")
    assert float(psnr) == pytest.approx(float(psnr_in), abs=0.05)


def test_train_then_reconstruct_end_to_end(sharp_folder, tmp_path):
    work = tmp_path / "run"
    env = {**os.environ}
    train = subprocess.run([sys.executable, "-m", "hidd.cli.train", "--config", "tiny", "--workdir", str(work),
                            "--set", f"data.roots=[{sharp_folder}]", "--set", "training.steps=300",
                            "--set", "training.eval_every=0"], capture_output=True, text=True, cwd=REPO, env=env)
    assert train.returncode == 0, train.stderr[-2000:]
    _pairs(tmp_path / "pairs")
    out = tmp_path / "out"
    rec = subprocess.run([sys.executable, "-m", "hidd.cli.reconstruct", "--input", str(tmp_path / "pairs/blurred"),
                          "--target", str(tmp_path / "pairs/sharp"), "--output", str(out), "--checkpoint",
                          str(work / "checkpoints/latest.pt"), "--preset", "paper", "--set", "sampler.num_steps=20",
                          "--save-every", "10", "--curve-every", "5"],
                         capture_output=True, text=True, cwd=REPO, env=env)
    assert rec.returncode == 0, rec.stderr[-2000:]
    assert {"im0.png", "im1.png"} <= {p.name for p in out.glob("*.png")}
    assert (out / "iterates" / "im0" / "iter_00010.png").is_file() and (out / "iterates" / "im0" / "iter_00020.png").is_file()
    assert "num_steps: 20" in (out / "config.yaml").read_text()
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and all(r.split(",")[4] == "80" for r in rows[1:])  # paper: 4 NFE per iteration
    assert "mean" in rec.stdout and "PSNR" in rec.stdout

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(out / "tb")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"psnr/im0", "ssim/im1", "psnr/mean", "ssim/mean"} <= tags
    assert [e.step for e in events.Scalars("psnr/mean")] == [5, 10, 15, 20]


class ScalarLog:
    def __init__(self):
        self.scalars = []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, step))


def test_curve_points_are_spaced_to_cost_at_most_their_share_of_the_sampling_time(tmp_path):
    from hidd.monitor import CurveLogger, CurveSchedule
    from hidd.paired import Pair
    from hidd.reconstruct import Job

    sharp = synthetic_photo(0, 32)
    job = Job(pair=Pair("a", tmp_path / "a.png", tmp_path / "b.png"), blurred=sharp, sharp=sharp, bit_depth=8)
    given = CurveSchedule(2, None)  # --curve-every 2: every second level, whatever it costs
    writer = ScalarLog()
    logger = CurveLogger(writer, [job], tmp_path, schedule=given, save_every=0)
    for iteration in range(8):
        logger(iteration, torch.from_numpy(sharp).permute(2, 0, 1)[None])
    assert sorted(logger.curves) == [2, 4, 6, 8] == sorted({step for _, step in writer.scalars})
    budgeted = CurveSchedule(1, 0.1)
    budgeted.seconds_per_value = 1.0 / sharp.size  # a point of this image: 1 s
    budgeted.decide([job], level_seconds=1.0)  # a level: 1 s; at most 10 % for points: one every 10 levels
    budgeted.decide([job, job], level_seconds=100.0)  # decided once, for the whole run
    assert budgeted.stride == 10 and [step for step in range(1, 31) if budgeted.due(step)] == [10, 20, 30]
    cheap = CurveSchedule(3, 0.1)
    cheap.seconds_per_value = 1e-3 / sharp.size
    cheap.decide([job], level_seconds=1.0)
    assert cheap.stride == 3  # never denser than asked


def test_an_earlier_runs_outputs_inside_the_input_folder_are_not_read_as_inputs(tiny_checkpoint, tmp_path, capsys):
    write_image(tmp_path / "photos" / "a.png", synthetic_photo(0, 32))
    common = ["--input", str(tmp_path / "photos"), "--checkpoint", str(tiny_checkpoint), "--set",
              "sampler.num_steps=2", "--compare"]
    reconstruct_main([*common, "--output", str(tmp_path / "photos" / "first")])
    capsys.readouterr()
    reconstruct_main([*common, "--output", str(tmp_path / "photos" / "second")])
    assert [row["name"] for row in read_csv(tmp_path / "photos" / "second" / "metrics.csv")] == ["a"]
    assert "first holds an earlier run's outputs" in capsys.readouterr().err


@pytest.mark.parametrize("stray, phrase", [
    ("a.png", "no hidd metrics.csv, so no hidd run wrote it"),  # a photo of the user's, named as a result would be
    ("config.yaml", "no hidd metrics.csv, so no hidd run wrote it"),  # e.g. a training run's folder
    ("metrics.csv", "not a hidd metrics table"),
])
def test_hidd_replaces_no_file_it_did_not_write(tiny_checkpoint, tmp_path, capsys, stray, phrase):
    write_image(tmp_path / "in" / "a.png", synthetic_photo(0, 32))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / stray).write_text("the user's own file\n")
    argv = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint),
            "--set", "sampler.num_steps=2"]
    with pytest.raises(SystemExit) as e:
        reconstruct_main(argv)
    assert e.value.code == 2 and phrase in capsys.readouterr().err
    assert (tmp_path / "out" / stray).read_text() == "the user's own file\n"


def test_a_new_run_does_not_mix_with_an_earlier_one_and_a_resume_must_match_it(tiny_checkpoint, tmp_path, capsys):
    write_image(tmp_path / "in" / "a.png", synthetic_photo(0, 32))
    folders = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    argv = [*folders, "--checkpoint", str(tiny_checkpoint), "--set", "sampler.num_steps=2"]
    reconstruct_main(argv)
    assert "seed: 0" in (tmp_path / "out" / "run.yaml").read_text()
    for again, phrase in ((argv, "holds an earlier run's results (metrics.csv); finish that run with --skip-existing"),
                          ([*argv, "--skip-existing", "--seed", "5"], "come from other run options (seed: 0 there, 5 now)"),
                          ([*folders, "--skip-existing", "--method", "dncnn"], "come from another method")):
        with pytest.raises(SystemExit) as e:
            reconstruct_main(again)
        assert e.value.code == 2 and phrase in capsys.readouterr().err
    reconstruct_main([*argv, "--skip-existing"])  # the same options: nothing left to do
    assert "1 image(s) already done" in capsys.readouterr().err
