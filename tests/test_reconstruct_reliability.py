"""One image cannot crash a run: singular fits, non-finite values, per-image failures in a batch, and a
reconstruction that resumes after SIGKILL (--skip-existing) with the outputs of an uninterrupted run."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import synthetic_photo
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.deblur import Deblurrer
from hidd.blind import estimate_psf
from hidd.camera import Camera, LensPSF, PoissonGaussian
from hidd.imageio import write_image
from hidd.prior import load_prior
from hidd.reconstruct import KILL_AFTER_IMAGES_ENV

REPO = Path(__file__).resolve().parent.parent
FAST2 = ["--preset", "fast", "--set", "sampler.num_steps=2"]


def blurred_photo(size=64, radius=3.0):
    x = torch.from_numpy(synthetic_photo(5, size)).permute(2, 0, 1)[None]
    camera = Camera(psf=LensPSF(radius), tone="none", noise=PoissonGaussian(read=0.005))
    return camera.render(x, generator=torch.Generator().manual_seed(0))[0]


def estimate_radius(image):
    return estimate_psf(image).lens.radius


def test_a_singular_fit_means_no_blur_found(monkeypatch):
    y = blurred_photo()
    assert estimate_radius(y) > 2  # the fit finds the blur when it can solve its steps

    def singular(*args, **kwargs):  # what LAPACK reports for a singular normal matrix
        solution, info = solve_ex(*args, **kwargs)
        return solution, torch.ones_like(info)

    def raising(*args, **kwargs):  # what torch.linalg.solve then does
        raise torch.linalg.LinAlgError("linalg.solve: The solver failed because the input matrix is singular.")

    solve_ex = torch.linalg.solve_ex
    monkeypatch.setattr(torch.linalg, "solve_ex", singular)
    monkeypatch.setattr(torch.linalg, "solve", raising)
    assert estimate_radius(y) == 0.0


def test_nearly_singular_steps_of_a_noise_image_are_rejected_not_raised(monkeypatch):
    # A uniform-noise image gives normal matrices with determinants near 1e-31; LAPACK builds that call
    # them singular made the old solve raise. Emulate them: flag every such matrix as singular.
    solve_ex = torch.linalg.solve_ex

    def strict(matrix, rhs, **kwargs):
        solution, info = solve_ex(matrix, rhs, **kwargs)
        return solution, torch.where(torch.linalg.det(matrix).abs() < 1e-20, 1, info)

    def raising(matrix, rhs, **kwargs):
        solution, info = strict(matrix, rhs)
        if (info != 0).any():
            raise torch.linalg.LinAlgError("linalg.solve: The solver failed because the input matrix is singular.")
        return solution

    monkeypatch.setattr(torch.linalg, "solve_ex", strict)
    monkeypatch.setattr(torch.linalg, "solve", raising)
    noise = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0))
    assert estimate_radius(noise) == 0.0


def test_non_finite_noise_level_fails_only_that_image(tiny_checkpoint):
    prior = load_prior(tiny_checkpoint, preset="fast", overrides=["sampler.num_steps=2", "sampler.radius=2"])
    y = torch.stack([blurred_photo(32), blurred_photo(32)])
    y[1, 0, 5, 5] = float("nan")  # the review's case: NaN input → NaN noise level (clamp_min keeps NaN)
    result = Deblurrer(prior)(y, seed=0)
    assert result.problems[0] is None and torch.isfinite(result.images[0]).all()
    assert "noise level" in result.problems[1] and "nan" in result.problems[1]


def test_non_finite_output_is_named(tiny_checkpoint, monkeypatch):
    prior = load_prior(tiny_checkpoint, preset="fast", overrides=["sampler.num_steps=2", "sampler.radius=2",
                                                                   "sampler.noise_sigma=0.01"])
    deblurrer = Deblurrer(prior)
    score = deblurrer.score

    def poisoned(x, sigma):  # the network blows up on the second image only
        out = score(x, sigma)
        out[1] = float("inf")
        return out

    monkeypatch.setattr(deblurrer, "score", poisoned)
    result = deblurrer(torch.stack([blurred_photo(32), blurred_photo(32)]), seed=0)
    assert result.problems[0] is None
    assert "sampler's output is not finite" in result.problems[1]


def _run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hidd.cli.reconstruct", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})})


def _rows_without_time(path: Path):
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def test_resume_after_sigkill_gives_the_uninterrupted_outputs(tiny_checkpoint, tmp_path):
    inputs = tmp_path / "in"
    for i in range(5):  # same size: batches of 2 → [0 1] [2 3] [4]
        write_image(inputs / f"im{i}.png", synthetic_photo(10 + i, 32) * 0.9 + 0.05)
    common = ["--input", str(inputs), "--checkpoint", str(tiny_checkpoint), "--batch-size", "2", *FAST2,
              "--set", "sampler.radius=2"]
    straight = _run_cli(*common, "--output", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr

    out = tmp_path / "killed"
    killed = _run_cli(*common, "--output", str(out), env={KILL_AFTER_IMAGES_ENV: "3"})
    assert killed.returncode == -9  # SIGKILLed after im2.png was written, before its metrics row
    assert sorted(p.name for p in out.glob("*.png")) == ["im0.png", "im1.png", "im2.png"]
    assert [r["name"] for r in _rows_without_time(out / "metrics.csv")] == ["im0", "im1"]  # complete rows only

    resumed = _run_cli(*common, "--output", str(out), "--skip-existing")
    assert resumed.returncode == 0, resumed.stderr
    assert "2 image(s) already done" in resumed.stderr
    for i in range(5):  # bit-identical images, including im3, whose batch partner im2 was done already
        assert (out / f"im{i}.png").read_bytes() == (tmp_path / "straight" / f"im{i}.png").read_bytes(), i
    assert _rows_without_time(out / "metrics.csv") == _rows_without_time(tmp_path / "straight" / "metrics.csv")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_skip_existing_refuses_results_of_another_config(tiny_checkpoint, tmp_path, capsys):
    write_image(tmp_path / "in" / "a.png", synthetic_photo(1, 32))
    common = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint),
              *FAST2, "--set", "sampler.radius=2"]
    reconstruct_main(common)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        reconstruct_main([*common, "--skip-existing", "--set", "sampler.num_steps=3"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert "sampler.num_steps: 2 there, 3 now" in err


def test_skip_existing_takes_a_key_added_since_the_results_were_written_as_its_default(tiny_checkpoint, tmp_path,
                                                                                       capsys):
    write_image(tmp_path / "in" / "a.png", synthetic_photo(1, 32))
    common = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint),
              *FAST2, "--set", "sampler.radius=2"]
    reconstruct_main(common)
    stored = tmp_path / "out" / "config.yaml"
    older = yaml.safe_load(stored.read_text())
    del older["sampler"]["map_network"]  # as a config written before the key existed
    stored.write_text(yaml.safe_dump(older))
    capsys.readouterr()
    reconstruct_main([*common, "--skip-existing"])
    assert "1 image(s) already done" in capsys.readouterr().err
    del older["sampler"]["radius"]  # a key missing there while it is not at its default here: not the same config
    stored.write_text(yaml.safe_dump(older))
    with pytest.raises(SystemExit) as e:
        reconstruct_main([*common, "--skip-existing"])
    assert e.value.code == 2 and "sampler.radius: 0.0 there, 2.0 now" in capsys.readouterr().err
