"""Pictures to compare by eye (--compare: compare/NAME.png and index.html) and the progress a run shows."""
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch

from conftest import load_script, read_csv, synthetic_photo
from hidd.camera import Camera, LensPSF
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.cli.reconstruct import parser as reconstruct_parser
from hidd.deblur import Deblurrer
from hidd.imageio import read_image, write_image
from hidd.prior import load_prior
from hidd.monitor import BatchProgress
from hidd.reconstruct import batch_size
from hidd.report import GAP

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class Page(HTMLParser):
    """The <img> sources and table cells of a page."""

    def __init__(self):
        super().__init__()
        self.images, self.cells, self._in_cell = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._in_cell = tag == "td"

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data)
            self._in_cell = False


def _pairs(folder: Path, colour=(0.0, 0.0, 0.0)) -> None:
    for i in range(2):
        sharp = synthetic_photo(i, 32)
        sharp[8:24, 8:24] = colour if i == 0 else sharp[8:24, 8:24]
        write_image(folder / "sharp" / f"im{i}.png", sharp)
        blurred = Camera(psf=LensPSF(1.5)).render(torch.from_numpy(sharp).permute(2, 0, 1)[None])
        write_image(folder / "blurred" / f"im{i}.png", blurred[0].permute(1, 2, 0).numpy())


def _compare_run(tmp_path, checkpoint, colour=(0.0, 0.0, 0.0)) -> Path:
    _pairs(tmp_path, colour)
    out = tmp_path / "out"
    reconstruct_main(["--input", str(tmp_path / "blurred"), "--target", str(tmp_path / "sharp"), "--output",
                      str(out), "--checkpoint", str(checkpoint), "--set", "sampler.num_steps=2", "--compare"])
    return out


def test_compare_writes_each_photos_picture_and_a_page_of_them_with_their_metrics(tiny_checkpoint, tmp_path):
    out = _compare_run(tmp_path, tiny_checkpoint)
    for name in ("im0", "im1"):
        picture = read_image(out / "compare" / f"{name}.png").pixels
        assert picture.shape == (32, 3 * 32 + 2 * GAP, 3)
        assert np.allclose(picture[:, :32], read_image(tmp_path / "blurred" / f"{name}.png").pixels, atol=1 / 255)
        assert np.allclose(picture[:, -32:], read_image(tmp_path / "sharp" / f"{name}.png").pixels, atol=1 / 255)
        assert np.allclose(picture[:, 32 + GAP:64 + GAP], read_image(out / f"{name}.png").pixels, atol=1 / 255)
    page = Page()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    assert [unquote(src) for src in page.images] == ["compare/im0.png", "compare/im1.png"]
    rows = read_csv(out / "metrics.csv")
    assert [row["psnr"] for row in rows] == [cell for cell in page.cells if cell in {r["psnr"] for r in rows}]


def test_evaluate_reads_a_compare_run_without_taking_its_pictures_for_results(tiny_checkpoint, tmp_path, capsys):
    out = _compare_run(tmp_path, tiny_checkpoint)
    evaluate = load_script("evaluate")
    evaluate.main([str(out), "--target", str(tmp_path / "sharp"), "--error-maps", str(out / "errors")])
    assert [row["name"] for row in read_csv(out / "evaluation.csv")] == ["im0", "im1", "mean"]
    evaluate.main([str(out), "--target", str(tmp_path / "sharp"), "--error-maps", str(out / "errors")])  # again:
    assert [row["name"] for row in read_csv(out / "evaluation.csv")] == ["im0", "im1", "mean"]  # maps not results


@pytest.mark.skipif(not any(shutil.which(b) for b in BROWSERS), reason="no headless Chromium or Chrome here")
def test_the_page_renders_its_pictures_in_a_headless_browser(tiny_checkpoint, tmp_path):
    out = _compare_run(tmp_path, tiny_checkpoint, colour=(1.0, 0.0, 0.0))  # a red square in photo im0
    browser = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=800,600", (out / "index.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = read_image(shot).pixels
    red = (pixels[..., 0] > 0.8) & (pixels[..., 1] < 0.25) & (pixels[..., 2] < 0.25)
    assert red.sum() >= 16 * 16  # the target's red square at least, drawn from compare/im0.png


def test_a_batch_reports_its_stages_and_network_evaluations_as_it_goes(tiny_checkpoint):
    deblur = Deblurrer(load_prior(tiny_checkpoint, preset="fast", overrides=["sampler.num_steps=3"]))
    seen = []
    y = Camera(psf=LensPSF(2.0)).render(torch.from_numpy(synthetic_photo(5, 48)).permute(2, 0, 1)[None])
    result = deblur(y, progress=lambda stage, nfe: seen.append((stage, nfe)))
    stages = list(dict.fromkeys(stage for stage, _ in seen))
    assert stages[:3] == ["reading colour", "estimating the blur", "sampling"] and "checking the results" in stages
    assert max(nfe for _, nfe in seen) == result.nfe > 0


class FakeBar:
    def __init__(self):
        self.postfixes = []

    def set_postfix_str(self, text, refresh=True):
        self.postfixes.append(text)


def test_the_progress_bar_shows_the_batch_stage_level_and_nfe():
    bar = FakeBar()
    progress = BatchProgress(bar, size=4, levels=12)
    progress.REFRESH = 0  # draw every change
    progress("estimating the blur", 0)
    progress("sampling", 1)
    progress.level(1)
    progress("sampling", 2)
    assert bar.postfixes[0] == "4 img: estimating the blur"
    assert bar.postfixes[-1] == "4 img: sampling level 1/12, NFE 2"


def test_batch_size_auto_is_one_photo_at_a_time_on_a_cpu_and_help_shows_defaults_and_presets():
    assert batch_size("auto", torch.device("cpu")) == 1 and batch_size("3", torch.device("cpu")) == 3
    with pytest.raises(ValueError, match="--batch-size 0: must be at least 1"):
        batch_size("0", torch.device("cpu"))
    text = " ".join(reconstruct_parser().format_help().split())
    assert "(default: auto)" in text and "(default: 0)" in text  # --batch-size, --seed
    for line in ("fast blind, in the camera's linear light", "paper Algorithm 1 of the paper", "quality fast with"):
        assert line in text
