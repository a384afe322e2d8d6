"""The bad-input sweep of issue #11, through the command-line tools in process (seeded, small images).

Every input class of docs/RELIABILITY.md ends as correct output, or as one line naming the file and
the problem with the documented exit status (0 all written, 1 some inputs failed, 2 usage error);
never a traceback, a hang, a duplicate or a lost metrics.csv.
"""
import csv
import errno
import os
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import skimage.io
import torch

import hidd.blind
import hidd.measurement
import hidd.reconstruct
from conftest import synthetic_photo
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.cli.train import main as train_main
from hidd.deblur import Deblurrer
from hidd.imageio import read_image, write_image
from hidd.blind import PSFEstimate
from hidd.camera import LensPSF

FAST = ["--preset", "fast", "--set", "sampler.num_steps=2"]
NON_UTF8 = os.fsdecode(b"caf\xe9.png")  # a Latin-1 file name, not valid UTF-8


def rng(seed):
    return np.random.default_rng(seed)


def photo(seed, size=32):
    return synthetic_photo(seed, size)


def save_u8(path: Path, pixels: np.ndarray) -> None:
    skimage.io.imsave(path, pixels, check_contrast=False)


def exif_jpeg(path: Path, orientation: int, size=(48, 32)) -> None:
    exif = PIL.Image.Exif()
    exif[0x0112] = orientation
    pixels = (photo(7, max(size))[:size[1], :size[0]] * 255).astype(np.uint8)
    PIL.Image.fromarray(pixels).save(path, exif=exif, quality=95)


def truncated_png(path: Path) -> None:
    write_image(path, photo(8))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


# name → (how to write it, None if it must be restored, else a phrase its one-line failure must hold)
GOOD = {
    "photo.png": lambda p: write_image(p, photo(0)),
    "deep16.png": lambda p: write_image(p, photo(1), bit_depth=16),
    "gray.png": lambda p: write_image(p, photo(13)[..., :1]),  # an RGB model takes it as three equal channels
    "noise.png": lambda p: write_image(p, rng(2).uniform(0, 1, (64, 64, 3))),  # the singular-fit image class
    "edge16.png": lambda p: write_image(p, photo(3)[8:24, 8:24]),  # exactly the minimum size
    "portrait.jpg": lambda p: exif_jpeg(p, 6),  # stored 48 wide x 32 high, shown 32 x 48
    "float.tif": lambda p: save_u8(p, photo(4).astype(np.float32)),
    NON_UTF8: lambda p: write_image(p, photo(5)),
    "line\nbreak.png": lambda p: write_image(p, photo(6)),
    "sub/inner.png": lambda p: write_image(p, photo(9)),  # reached also through the symlink loops
}
BAD = {
    "truncated.png": (truncated_png, "cannot be decoded"),
    "garbage.jpg": (lambda p: p.write_bytes(rng(10).bytes(300)), "cannot be decoded"),
    "notes.png": (lambda p: p.write_text("not an image\n"), "cannot be decoded"),
    "empty.png": (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
    "alpha.png": (lambda p: save_u8(p, rng(11).integers(0, 256, (32, 32, 4), dtype=np.uint8)), "alpha channel"),
    "cmyk.jpg": (lambda p: PIL.Image.fromarray((photo(12) * 255).astype(np.uint8)).convert("CMYK").save(p), "CMYK"),
    "small8.png": (lambda p: write_image(p, photo(14)[:8, :8]), "at least 16x16"),
    "small15.png": (lambda p: write_image(p, photo(15, 40)[:15]), "at least 16x16"),
    "nan.tif": (lambda p: save_u8(p, np.where(photo(16) > 0.5, np.nan, photo(16)).astype(np.float32)), "NaN"),
    "inf.tif": (lambda p: save_u8(p, np.where(photo(17) > 0.5, np.inf, photo(17)).astype(np.float32)), "infinite"),
    "hdr.tif": (lambda p: save_u8(p, (photo(18) * 4).astype(np.float32)), "outside [0, 1]"),
    "clash.png": (lambda p: write_image(p, photo(19)), "cannot be told apart"),
    "clash.jpg": (lambda p: save_u8(p, (photo(20) * 255).astype(np.uint8)), "cannot be told apart"),
}


def run(main, argv, capsys):
    """(exit status, stdout + stderr) of one in-process CLI call."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def lines_naming(text: str, path: Path) -> list[str]:
    """The lines about this file (messages start with its path)."""
    return [line for line in text.splitlines() if f"{path}:" in line]


def metrics_rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv", newline="", encoding="utf-8", errors="surrogateescape") as f:
        return list(csv.DictReader(f))


def test_every_input_class_in_one_folder(tiny_checkpoint, tmp_path, capsys, bounded_walks):
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    for name, write in GOOD.items():
        write(inputs / name)
    for name, (write, _) in BAD.items():
        write(inputs / name)
    (inputs / "self").symlink_to(".")  # self -> . and sub/up -> ..: once a 1.9 GB hang
    (inputs / "sub" / "up").symlink_to("..")
    out = tmp_path / "out"
    code, text = run(reconstruct_main, ["--input", inputs, "--output", out, "--checkpoint", tiny_checkpoint, *FAST],
                     capsys)

    assert code == 1 and "Traceback" not in text
    for name, (_, problem) in BAD.items():
        named = lines_naming(text, inputs / name)
        assert len(named) == 1, (name, named)  # printed once, not on stdout and again on stderr
        assert problem in named[0], (name, named[0])
    assert f"{len(BAD)} input(s) failed" in text

    expected = sorted(Path(name).with_suffix("").as_posix().replace("/", "_") for name in GOOD)
    assert sorted(os.fsdecode(p.stem) for p in out.glob("*.png")) == expected  # each once, loops or not
    rows = metrics_rows(out)
    assert sorted(row["name"] for row in rows) == expected
    non_utf8 = next(row for row in rows if row["name"] == Path(NON_UTF8).stem)
    assert os.fsencode(non_utf8["input"]) == os.fsencode(inputs / NON_UTF8)  # the file's own bytes
    assert read_image(out / "portrait.png").pixels.shape == (48, 32, 3)  # upright, as a viewer shows it
    assert read_image(out / "gray.png").pixels.shape[-1] == 1  # written back gray
    assert read_image(out / "deep16.png").bit_depth == 16 and read_image(out / "float.png").bit_depth == 16


@pytest.fixture
def bright_dark_and_odd_sizes(tmp_path):
    """Four 32 px images sampled as one batch (two normal, one bright, one dark), and 40 and 48 px ones."""
    inputs = tmp_path / "in"
    write_image(inputs / "ok1.png", photo(21))
    write_image(inputs / "ok2.png", photo(22))
    write_image(inputs / "raises.png", 0.93 + 0.05 * photo(23))  # mean > 0.9: its radius fit raises
    write_image(inputs / "nan_noise.png", 0.05 * photo(24))  # mean < 0.1: its noise estimate is NaN
    write_image(inputs / "nan_output.png", photo(25, 40))  # 40 px: the network returns infinity
    write_image(inputs / "at_bound.png", photo(26, 48))  # 48 px: the radius estimate sits at the bound
    return inputs


BOUND = 12.0


def test_failures_inside_estimation_and_sampling_fail_one_image(bright_dark_and_odd_sizes, tiny_checkpoint,
                                                                tmp_path, capsys, monkeypatch):
    estimate_nlfs = hidd.measurement.estimate_nlfs
    score = Deblurrer.score

    def psf(linear, **fit):
        if linear.mean() > 0.8:  # linear light: the bright photo
            raise RuntimeError("fit exploded")
        if linear.shape[-1] == 48:
            return PSFEstimate(LensPSF(BOUND), 1, True, 1e-6, 1.0, 0.5)  # the top of a small image's range
        if linear.shape[-1] == 40:
            return PSFEstimate(LensPSF(2.0), 1, False, 1e-6, 1.0, 0.5)  # blurred: sampled (in focus would not be)
        return hidd.blind.estimate_defocus(linear, **fit)

    def noise(encoded, tone, lenses=None):  # the dark photo's noise level is NaN
        nlf = estimate_nlfs(encoded, tone, lenses)
        nlf.read = torch.where(encoded.flatten(1).mean(dim=1) < 0.1, torch.nan, nlf.read)
        return nlf

    def network(self, x, sigma):
        out = score(self, x, sigma)
        return out.fill_(torch.inf) if x.shape[-1] == 40 else out

    def write(path, pixels, **kwargs):  # the disk fills up just as ok2's result is written
        if path.name == "ok2.png":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        write_image(path, pixels, **kwargs)

    monkeypatch.setattr(hidd.measurement, "estimate_defocus_batch",
                        lambda linear, **fit: [psf(image, **fit) for image in linear])
    monkeypatch.setattr(hidd.measurement, "estimate_nlfs", noise)
    monkeypatch.setattr(Deblurrer, "score", network)
    monkeypatch.setattr(hidd.reconstruct, "write_image", write)
    out = tmp_path / "out"
    code, text = run(reconstruct_main, ["--input", bright_dark_and_odd_sizes, "--output", out,
                                        "--checkpoint", tiny_checkpoint, *FAST], capsys)
    assert code == 1 and "Traceback" not in text
    for name, problem in [("raises.png", "deblurring failed (RuntimeError: fit exploded)"),
                          ("nan_noise.png", "noise level estimated from the image is not finite (nan)"),
                          ("nan_output.png", "sampler's output is not finite")]:
        named = lines_naming(text, bright_dark_and_odd_sizes / name)
        assert len(named) == 1 and problem in named[0], (name, named)
    full = lines_naming(text, out / "ok2.png")
    assert len(full) == 1 and "cannot be written (No space left on device)" in full[0]
    warned = lines_naming(text, bright_dark_and_odd_sizes / "at_bound.png")
    assert len(warned) == 1 and "warning" in warned[0] and "sampler.radius" in warned[0]
    assert "4 input(s) failed" in text
    assert sorted(p.name for p in out.glob("*.png")) == ["at_bound.png", "ok1.png"]
    rows = {row["name"]: row for row in metrics_rows(out)}
    assert sorted(rows) == ["at_bound", "ok1"] and float(rows["at_bound"]["radius"]) == BOUND
    for name in rows:
        assert np.isfinite(read_image(out / f"{name}.png").pixels).all()


def test_singular_radius_fit_reads_as_in_focus(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    solve_ex = torch.linalg.solve_ex

    def singular(*args, **kwargs):  # every normal matrix singular, as LAPACK reported for a noise image
        solution, info = solve_ex(*args, **kwargs)
        return solution, torch.ones_like(info)

    def raising(*args, **kwargs):
        raise torch.linalg.LinAlgError("linalg.solve: The solver failed because the input matrix is singular.")

    monkeypatch.setattr(torch.linalg, "solve_ex", singular)
    monkeypatch.setattr(torch.linalg, "solve", raising)
    write_image(tmp_path / "in" / "noise.png", rng(27).uniform(0, 1, (32, 32, 3)))
    code, text = run(reconstruct_main, ["--input", tmp_path / "in", "--output", tmp_path / "out",
                                        "--checkpoint", tiny_checkpoint, *FAST], capsys)
    assert code == 0 and "Traceback" not in text
    assert float(metrics_rows(tmp_path / "out")[0]["radius"]) == 0.0


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_identical_target_gives_inf_psnr_without_warnings(tiny_checkpoint, tmp_path, capsys):
    write_image(tmp_path / "in" / "a.png", photo(28))
    write_image(tmp_path / "sharp" / "a.png", photo(28))
    code, text = run(reconstruct_main, ["--input", tmp_path / "in", "--target", tmp_path / "sharp",
                                        "--output", tmp_path / "out", "--checkpoint", tiny_checkpoint, *FAST,
                                        "--set", "sampler.radius=2"], capsys)
    assert code == 0
    assert metrics_rows(tmp_path / "out")[0]["psnr_input"] == "inf"
    assert any(line.startswith("a ") and " inf " in line for line in text.splitlines())  # the printed table


def test_a_complete_run_resumed_with_skip_existing_does_nothing(tiny_checkpoint, tmp_path, capsys):
    write_image(tmp_path / "in" / "a.png", photo(29))
    argv = ["--input", tmp_path / "in", "--output", tmp_path / "out", "--checkpoint", tiny_checkpoint, *FAST,
            "--set", "sampler.radius=2"]
    assert run(reconstruct_main, argv, capsys)[0] == 0
    before = (tmp_path / "out" / "a.png").stat().st_mtime_ns, metrics_rows(tmp_path / "out")
    code, text = run(reconstruct_main, [*argv, "--skip-existing"], capsys)
    assert code == 0 and "1 image(s) already done" in text and "0 image(s) written" in text
    assert ((tmp_path / "out" / "a.png").stat().st_mtime_ns, metrics_rows(tmp_path / "out")) == before


def usage_cases(tmp_path: Path, checkpoint: Path) -> dict[str, tuple[list, str]]:
    """Run-level problems: argv and the phrase of their one line (exit status 2, nothing processed)."""
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "metrics.csv").write_text("image,score\nx,1\n")
    (tmp_path / "earlier").mkdir()  # a metrics table of hidd before the no-harm guard's 'share' column
    (tmp_path / "earlier" / "metrics.csv").write_text("name,input,height,width,nfe,seconds,radius,psnr_input,"
                                                      "ssim_input,psnr,ssim\n")
    evil = tmp_path / "evil.pt"
    torch.save({**torch.load(checkpoint, weights_only=True), "x": Evil(tmp_path / "pwned")}, evil)
    return {
        "output is a file": (["--output", tmp_path / "a_file"], "is a file, not a folder"),
        "output below a file": (["--output", tmp_path / "a_file" / "sub"], "cannot be written"),
        "output is the input": (["--output", tmp_path / "in"], "is the --input folder itself"),
        "missing input": (["--output", tmp_path / "o", "--input", tmp_path / "nope"], "no such file or folder"),
        "malicious checkpoint": (["--output", tmp_path / "o", "--checkpoint", evil], "refused"),
        "non-finite setting": (["--output", tmp_path / "o", "--set", "sampler.prox_lambda=nan"], "finite number"),
        "misspelt value": (["--output", tmp_path / "o", "--set", "sampler.tone_curve=srgbb"], "did you mean 'srgb'?"),
        "device it lacks": (["--output", tmp_path / "o", "--device", "cuda:99"], "--device cuda:99: "),
        "foreign metrics.csv": (["--output", tmp_path / "foreign", "--skip-existing"], "not a hidd metrics table"),
        "earlier metrics.csv": (["--output", tmp_path / "earlier", "--skip-existing"], "written by an earlier hidd"),
    }


class Evil:
    """Unpickling this creates a file: a stand-in for an attacker's payload."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.parametrize("case", ["output is a file", "output below a file", "output is the input",
                                  "missing input", "malicious checkpoint", "non-finite setting", "misspelt value",
                                  "device it lacks", "foreign metrics.csv", "earlier metrics.csv"])
def test_usage_errors_are_one_line_with_status_2(tiny_checkpoint, tmp_path, capsys, case):
    write_image(tmp_path / "in" / "a.png", photo(30))
    extra, phrase = usage_cases(tmp_path, tiny_checkpoint)[case]
    argv = ["--input", tmp_path / "in", "--checkpoint", tiny_checkpoint, *FAST, *extra]  # later options win
    code, text = run(reconstruct_main, argv, capsys)
    assert code == 2 and text.count("\n") == 1 and phrase in text and "Traceback" not in text, text
    assert not (tmp_path / "pwned").exists()
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")] == ["in/a.png"]  # nothing written


@pytest.mark.parametrize("argv, phrase", [
    (["--config", "tiny", "--workdir", "a_file"], "--workdir a_file: is a file, not a folder"),
    (["--workdir", "nope", "--resume"], "--workdir nope: no run to resume there (no checkpoints/latest.pt)"),
    (["--workdir", "fresh"], "--config is required to start a run"),
    (["--config", "tiny", "--workdir", "fresh", "--device", "cuda:99"], "--device cuda:99: "),
    (["--config", "tiny", "--workdir", "fresh", "--device", "gpu"], "--device gpu: not a device"),
])
def test_training_usage_errors_are_one_line_in_hidds_words(tmp_path, monkeypatch, capsys, argv, phrase):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("x")
    code, text = run(train_main, argv, capsys)
    assert code == 2 and text.count("\n") == 1 and text.startswith("hidd-train: error: ") and phrase in text, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing made


def test_a_shipped_checkpoint_is_found_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "photo.png", photo(31))
    code, text = run(reconstruct_main, ["--input", "photo.png", "--output", "out", "--method", "ffdnet",
                                        "--checkpoint", "checkpoints/ffdnet.pt"], capsys)
    assert code == 0 and (tmp_path / "out" / "photo.png").is_file(), text


def test_an_interrupted_run_says_how_to_finish_it(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(hidd.reconstruct, "run", interrupted)
    code, text = run(reconstruct_main, ["--input", tmp_path, "--output", tmp_path / "o"], capsys)
    assert code == 130 and text.count("\n") == 1 and "run the same command with --skip-existing" in text


def test_training_survives_an_unreadable_first_file(sharp_folder, tmp_path, capsys):
    (sharp_folder / "000_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 20)  # sorted first: was held out
    code, text = run(train_main, ["--config", "tiny", "--workdir", tmp_path / "run", "--set",
                                  f"data.roots=[{sharp_folder}]", "--set", "training.steps=2", "--set",
                                  "training.eval_every=0"], capsys)
    assert code == 0 and "done" in text and "Traceback" not in text
