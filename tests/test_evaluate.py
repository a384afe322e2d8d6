"""Tests for scripts/evaluate.py on tiny result/target folders written into tmp_path."""
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.io
from skimage.metrics import structural_similarity

from conftest import load_script, read_csv, synthetic_photo
from hidd.imageio import read_image, write_image

evaluate = load_script("evaluate")


def write_float_tiff(path: Path, pixels: np.ndarray) -> None:
    """Float TIFFs keep values like 0.1 (nearly) exact, which 8-bit PNGs cannot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    skimage.io.imsave(path, pixels.astype(np.float32), check_contrast=False)


@pytest.fixture
def offset_pair(tmp_path):
    """'shifted': target + 0.1 everywhere (MSE 0.01, so PSNR 20 dB); 'same': identical to its target."""
    target = synthetic_photo(0, 32) * 0.8  # headroom so that + 0.1 stays inside [0, 1]
    write_float_tiff(tmp_path / "target" / "shifted.tif", target)
    write_float_tiff(tmp_path / "result" / "shifted.tif", target + 0.1)
    write_float_tiff(tmp_path / "target" / "same.tif", target)
    write_float_tiff(tmp_path / "result" / "same.tif", target)
    return tmp_path / "result", tmp_path / "target"


def test_constant_offset_and_identical_images(offset_pair, capsys):
    result, target = offset_pair
    evaluate.main([str(result), "--target", str(target)])
    rows = {row["name"]: row for row in read_csv(result / "evaluation.csv")}
    assert list(rows) == ["same", "shifted", "mean"]
    assert float(rows["shifted"]["psnr"]) == pytest.approx(20.0, abs=1e-4)
    assert float(rows["same"]["ssim"]) == 1.0 and float(rows["same"]["psnr"]) == float("inf")
    assert float(rows["mean"]["ssim"]) == pytest.approx((1.0 + float(rows["shifted"]["ssim"])) / 2, abs=1e-6)
    assert "shifted" in capsys.readouterr().out
    settings = (result / "evaluation.yaml").read_text()
    assert "data_range 1" in settings and "images: 2" in settings


def test_ssim_matches_skimage_computed_directly(tmp_path):
    sharp = synthetic_photo(1, 40)
    noisy = np.clip(sharp + np.random.default_rng(0).normal(0, 0.05, sharp.shape), 0, 1)
    write_image(tmp_path / "target" / "a.png", sharp)
    write_image(tmp_path / "result" / "a.png", noisy)
    out_csv = tmp_path / "elsewhere" / "scores.csv"
    evaluate.main([str(tmp_path / "result"), "--target", str(tmp_path / "target"), "--csv", str(out_csv)])
    # The 8-bit files as read back, scored with skimage itself: RGB, data_range 1, no crop.
    x = read_image(tmp_path / "result" / "a.png").pixels.astype(np.float64)
    gt = read_image(tmp_path / "target" / "a.png").pixels.astype(np.float64)
    expected = structural_similarity(gt, x, data_range=1.0, channel_axis=2)
    rows = read_csv(out_csv)
    assert [row["name"] for row in rows] == ["a", "mean"]
    assert float(rows[0]["ssim"]) == pytest.approx(expected, abs=1e-6)
    assert (out_csv.parent / "scores.yaml").is_file()


def test_error_maps_have_the_image_size_and_scale(offset_pair, tmp_path):
    result, target = offset_pair
    maps = tmp_path / "maps"
    evaluate.main([str(result), "--target", str(target), "--error-maps", str(maps), "--colormap", "gray"])
    shifted = read_image(maps / "shifted.png").pixels
    assert shifted.shape == (32, 32, 1)
    assert np.allclose(shifted, 0.1 / 0.25, atol=1 / 255)  # error 0.1 at the default --error-max 0.25
    assert np.all(read_image(maps / "same.png").pixels == 0)


def test_coloured_error_maps_with_matplotlib(offset_pair, tmp_path):
    pytest.importorskip("matplotlib")
    result, target = offset_pair
    evaluate.main([str(result), "--target", str(target), "--error-maps", str(tmp_path / "maps")])
    assert read_image(tmp_path / "maps" / "shifted.png").pixels.shape == (32, 32, 3)


def test_error_maps_fall_back_to_grayscale_without_matplotlib(offset_pair, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    result, target = offset_pair
    evaluate.main([str(result), "--target", str(target), "--error-maps", str(tmp_path / "maps")])
    assert read_image(tmp_path / "maps" / "shifted.png").pixels.shape == (32, 32, 1)
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert "colormap: gray" in (result / "evaluation.yaml").read_text()


@pytest.mark.parametrize("line, count", [("5", 32), ("x=7", 32)])
def test_profile_csv_holds_result_and_target_along_the_line(offset_pair, line, count):
    result, target = offset_pair
    evaluate.main([str(result), "--target", str(target), "--profile", line])
    axis, index = ("y", 5) if line == "5" else ("x", 7)
    rows = read_csv(result / "profiles" / f"shifted_{axis}{index}.csv")
    assert len(rows) == count
    along = "x" if axis == "y" else "y"
    gt = read_image(target / "shifted.tif").pixels
    expected = gt[index, 3] if axis == "y" else gt[3, index]  # the line's 4th pixel
    row = rows[3]
    assert int(row[along]) == 3
    assert [float(row[f"target_{c}"]) for c in "rgb"] == pytest.approx(expected, abs=1e-6)
    assert [float(row[f"result_{c}"]) for c in "rgb"] == pytest.approx(expected + 0.1, abs=1e-6)


def test_bad_pairs_are_one_line_errors_and_the_rest_is_scored(tmp_path, capsys):
    for name in ("good", "corrupt", "small"):
        write_image(tmp_path / "target" / f"{name}.png", synthetic_photo(2, 32))
    write_image(tmp_path / "result" / "good.png", synthetic_photo(2, 32))
    (tmp_path / "result" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    write_image(tmp_path / "result" / "small.png", synthetic_photo(2, 16))
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(tmp_path / "result"), "--target", str(tmp_path / "target")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    failed = [line.strip() for line in err.splitlines() if line.startswith("  ") and line.strip()]
    assert len(failed) == 2
    assert any("corrupt.png" in line and "cannot be decoded" in line for line in failed)
    assert any("small.png" in line and "16x16x3" in line and "32x32x3" in line for line in failed)
    assert [row["name"] for row in read_csv(tmp_path / "result" / "evaluation.csv")] == ["good", "mean"]


def test_missing_target_folder_is_one_line(tmp_path, capsys):
    write_image(tmp_path / "result" / "a.png", synthetic_photo(0, 16))
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(tmp_path / "result"), "--target", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--help"])
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    assert "--error-maps" in shown and "--profile" in shown and "--error-max" in shown


def test_profile_outside_the_image_is_reported(offset_pair, capsys):
    result, target = offset_pair
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(result), "--target", str(target), "--profile", "y=40"])
    assert exit_info.value.code == 1
    assert "outside the 32-pixel-high image" in capsys.readouterr().err
