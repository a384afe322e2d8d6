"""The scripts that measure issue 30's depth work: bench_defocus_map (the blind map against true radius maps, and on
sharp photos) and count_decisions (the default path's keys and constants)."""
import ast

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_script, read_csv, synthetic_photo
from hidd.blind.defocus_map import DefocusMap, tile_means
from hidd.camera import Camera, LensPSF
from hidd.camera.tone import tone_curve

bench_defocus_map, count_decisions = load_script("bench_defocus_map"), load_script("count_decisions")


def _pair(root, stem, radius_map, seed):
    sharp = torch.from_numpy(synthetic_photo(seed, 128)).permute(2, 0, 1)[None].float()
    blurred = Camera(psf=LensPSF(1.0)).render(sharp, radius_map=torch.from_numpy(radius_map).float())
    for folder, image in (("blurred", blurred), ("sharp", sharp)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        pixels = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(root / folder / f"{stem}.png")
    (root / "radius_maps").mkdir(exist_ok=True)
    np.save(root / "radius_maps" / f"{stem}.npy", radius_map.astype(np.float32))


def test_bench_defocus_map_scores_maps_and_sharp_photos(tmp_path, capsys):
    half = np.zeros((128, 128))
    half[:, 64:] = 6.0
    _pair(tmp_path / "bench", "subject_a", half, 1)
    _pair(tmp_path / "bench", "depth_b", np.tile(np.linspace(0, 8, 128), (128, 1)), 2)
    bench_defocus_map.main(["--benchmark", str(tmp_path / "bench"), "--output", str(tmp_path / "out")])
    rows = {row["photo"]: row for row in read_csv(tmp_path / "out" / "map.csv")}
    assert set(rows) == {"subject_a", "depth_b"}
    assert all(-1 <= float(r["correlation"]) <= 1 and float(r["mae"]) >= 0 for r in rows.values())
    assert float(rows["subject_a"]["correlation"]) > 0.5  # the blurred half reads blurred
    for flags in (["--held-out"], ["--in-focus-camera"], ["--sizes", "128"]):  # sharp-photo options: refused
        with pytest.raises(ValueError, match="give them with --sharp"):
            bench_defocus_map.main(["--benchmark", str(tmp_path / "bench"), *flags, "--output", str(tmp_path / "x")])
    (tmp_path / "sharp").mkdir()
    Image.fromarray((synthetic_photo(3, 160) * 255).round().astype(np.uint8)).save(tmp_path / "sharp" / "p.png")
    bench_defocus_map.main(["--sharp", str(tmp_path / "sharp"), "--sizes", "128", "--output", str(tmp_path / "s")])
    (row,) = read_csv(tmp_path / "s" / "map.csv")
    assert row["photo"] == "p@128" and 0 <= float(row["tiles_read_defocused"]) <= 1
    assert "2 photos" in capsys.readouterr().out


def test_bench_defocus_map_splits_the_error_into_over_and_under_reading(tmp_path):
    half = np.zeros((128, 128))
    half[:, 64:] = 6.0  # half in focus, half at 6 px: a map reading 2 px everywhere is 2 over, then 4 under
    _pair(tmp_path, "subject_a", half, 1)

    def two_px(photo, linear, noise_std, tile):
        radius = torch.full(photo.shape[-2:], 2.0)
        return DefocusMap(radius, torch.ones_like(radius), tile_means(radius, tile))

    with np.errstate(invalid="ignore"):  # a constant map has no correlation (NaN)
        (row,) = bench_defocus_map.benchmark_rows(tmp_path, tone_curve("srgb"), two_px)
    assert row["over"] == pytest.approx(1.0) and row["under"] == pytest.approx(2.0) and row["mae"] == pytest.approx(3.0)


def test_count_decisions_counts_numeric_constants_only():
    tree = ast.parse("A = 1.5\nB = (1, -2)\nC = 'name'\nD = ('x', 'y')\nE = 2 ** 20\nlower = 3\nF = object()\n")
    assert count_decisions.constants(tree) == ["A", "B", "E"]


def test_count_decisions_walks_the_default_path_from_hidd_deblur():
    modules = count_decisions.default_path(count_decisions.Path(count_decisions.__file__).resolve().parents[1])
    assert "hidd.deblur" in modules and "hidd.stages.select" in modules and "hidd.blind.psf_fit" in modules
    assert not any(name.startswith("hidd.models") for name in modules)  # architecture, not decisions
