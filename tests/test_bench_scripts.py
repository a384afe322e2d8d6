"""The benchmark scripts on a small benchmark: bench_quality's subset selection and tables, plot_quality."""
import ast
import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SCRIPTS, load_script, read_csv



make_benchmark, bench_quality, plot_quality, make_heldout = (
    load_script(n) for n in ("make_benchmark", "bench_quality", "plot_quality", "make_heldout"))


@pytest.fixture(scope="module")
def small_benchmark(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmark")
    make_benchmark.main(["--out", str(root), "--size", "48", "--radii", "2", "--levels", "3"])
    return root


def test_bench_quality_runs_the_named_images_and_a_preset(small_benchmark, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "bq"
    bench_quality.main(["--benchmark", str(small_benchmark), "--methods", "blurred", "fast",
                        "--images", "coffee_r2", "motorcycle_depth", "--checkpoint", str(tiny_checkpoint),
                        "--set", "sampler.num_steps=2", "--set", "sampler.prox_lambda_white=0",  # no restart
                        "--set", "sampler.noisy_retry_lambda=0",  # and no second sampling: NFE 2
                        "--threads", "1", "--output", str(out)])
    rows = read_csv(out / "per_image.csv")
    assert sorted({r["image"] for r in rows}) == ["coffee_r2", "motorcycle_depth"]
    nfe = {(r["method"], r["image"]): r["nfe"] for r in rows}
    assert nfe == {("blurry input", "coffee_r2"): "0", ("blurry input", "motorcycle_depth"): "0",
                   ("hidd fast", "coffee_r2"): "2", ("hidd fast", "motorcycle_depth"): "0"}  # read in focus at 48 px:
    # returned as it is, unsampled
    assert (out / "config_fast.yaml").is_file()
    assert "| hidd fast |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench_quality.main(["--benchmark", str(small_benchmark), "--methods", "blurred", "--images", "nope",
                            "--output", str(tmp_path / "none")])
    assert "no image(s) nope in the benchmark" in capsys.readouterr().err


def test_bench_quality_oracle_map_feeds_the_true_map_to_the_depth_image(small_benchmark, tiny_checkpoint, tmp_path):
    out = tmp_path / "bq"
    bench_quality.main(["--benchmark", str(small_benchmark), "--methods", "fast", "--images", "motorcycle_depth",
                        "--checkpoint", str(tiny_checkpoint), "--oracle-map", "--set", "sampler.num_steps=2",
                        "--set", "sampler.prox_lambda_white=0",
                        "--set", "sampler.radius_map=true", "--set", "sampler.consistency=gradient",
                        "--output", str(out)])
    (row,) = read_csv(out / "per_image.csv")
    assert row["method"] == "hidd fast (oracle map)" and int(row["nfe"]) == 2


def _batched_with_the_depth_image(benchmark, checkpoint, tmp_path) -> Path:
    """A --batch 3 --oracle-map run whose depth image (with a map) sorts between two without one."""
    out = tmp_path / "bq_map"
    bench_quality.main(["--benchmark", str(benchmark), "--methods", "fast", "--batch", "3", "--oracle-map",
                        "--images", "coffee_r2", "motorcycle_depth", "rocket_r2", "--checkpoint", str(checkpoint),
                        "--set", "sampler.num_steps=2", "--set", "sampler.prox_lambda_white=0",
                        "--set", "sampler.noisy_retry_lambda=0", "--set", "sampler.radius_map=true",
                        "--set", "sampler.consistency=gradient", "--threads", "1", "--output", str(out)])
    return out / "per_image.csv"


def test_bench_quality_batches_images_of_one_size_and_shares_their_time(small_benchmark, tiny_checkpoint, tmp_path,
                                                                        capsys):
    out = tmp_path / "bq"
    names = ["coffee_r2", "motorcycle_r2", "rocket_r2"]
    bench_quality.main(["--benchmark", str(small_benchmark), "--methods", "paper", "--images", *names, "--batch", "2",
                        "--checkpoint", str(tiny_checkpoint), "--set", "sampler.num_steps=2", "--threads", "1",
                        "--output", str(out)])
    rows = {r["image"]: r for r in read_csv(out / "per_image.csv")}
    assert sorted(rows) == names and {r["nfe"] for r in rows.values()} == {"8"}  # 4 per step (the paper's 4000 in 1000)
    assert rows["coffee_r2"]["seconds"] == rows["motorcycle_r2"]["seconds"]  # one batch, its time shared
    depth = read_csv(_batched_with_the_depth_image(small_benchmark, tiny_checkpoint, tmp_path))
    assert {r["image"] for r in depth} == {"coffee_r2", "motorcycle_depth", "rocket_r2"}
    seconds = {r["image"]: r["seconds"] for r in depth if r["method"] == "hidd fast (oracle map)"}
    assert seconds["coffee_r2"] == seconds["rocket_r2"] != seconds["motorcycle_depth"]  # the map's image apart
    with pytest.raises(SystemExit):
        bench_quality.main(["--benchmark", str(small_benchmark), "--methods", "paper", "--batch", "0",
                            "--output", str(tmp_path / "none")])
    assert "--batch 0: give 1 or more" in capsys.readouterr().err


def fake_run(folder: Path, method: str, nfe: int, psnrs: dict[str, float]):
    folder.mkdir(parents=True)
    with open(folder / "per_image.csv", "w", newline="") as f:
        table = csv.DictWriter(f, fieldnames=["method", "image", "psnr", "ssim", "nfe"])
        table.writeheader()
        table.writerows({"method": method, "image": k, "psnr": v, "ssim": v / 100, "nfe": nfe} for k, v in psnrs.items())


def test_plot_quality_averages_the_selected_images(tmp_path):
    fake_run(tmp_path / "a", "hidd fast", 6, {"x": 30.0, "y": 20.0, "z": 0.0})
    rows = plot_quality.read_rows(tmp_path / "a", {"x", "y"})
    assert plot_quality.mean_point(rows) == pytest.approx((6.0, 25.0, 0.25))
    with pytest.raises(ValueError, match="lacks image"):
        plot_quality.read_rows(tmp_path / "a", {"x", "w"})
    with pytest.raises(FileNotFoundError, match="per_image.csv"):
        plot_quality.read_rows(tmp_path / "missing", None)


def test_plot_quality_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    fake_run(tmp_path / "a", "hidd fast", 6, {"x": 30.0})
    fake_run(tmp_path / "b", "hidd fast", 12, {"x": 31.0})
    fake_run(tmp_path / "base", "blurry input", 0, {"x": 25.0})
    out = tmp_path / "plot.png"
    plot_quality.main(["--series", f"fast={tmp_path / 'a'},{tmp_path / 'b'}", "--baselines", str(tmp_path / "base"),
                       "--output", str(out)])
    assert out.stat().st_size > 10_000
    mixed = tmp_path / "mixed"
    fake_run(mixed, "hidd fast", 12, {"x": 31.0})
    with open(mixed / "per_image.csv", "a") as f:
        f.write("blurry input,x,25.0,0.25,0\n")
    with pytest.raises(SystemExit):
        plot_quality.main(["--series", f"fast={tmp_path / 'a'},{mixed}", "--output", str(tmp_path / "no.png")])
    assert "holds several methods" in capsys.readouterr().err and not (tmp_path / "no.png").exists()


@pytest.fixture(scope="module")
def small_dncnn(tmp_path_factory):
    """An untrained, tiny DnCNN in the shipped checkpoint format."""
    import torch

    from hidd import checkpoint
    from hidd.baselines.config import load_baseline_config
    from hidd.baselines.networks import build_network

    cfg = load_baseline_config("dncnn", ["model.features=4", "model.depth=3"])
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("dncnn") / "dncnn.pt"
    checkpoint.save_atomic({"baseline": "dncnn", "restorer_only": True, "model": build_network(cfg.model).state_dict(),
                            "step": 0, "config": cfg.to_dict()}, path)
    return path


def test_bench_quality_compares_networks_and_prints_the_papers_percentages(small_benchmark, small_dncnn,
                                                                            tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "bq"
    bench_quality.main(["--benchmark", str(small_benchmark), "--methods", "blurred", f"dncnn@{small_dncnn}", "fast",
                        "--images", "coffee_r2", "camera_r2", "--checkpoint", str(tiny_checkpoint),
                        "--set", "sampler.num_steps=2", "--set", "sampler.prox_lambda_white=0",
                        "--set", "sampler.noisy_retry_lambda=0",
                        "--threads", "1", "--save-images", "--output", str(out)])
    rows = read_csv(out / "per_image.csv")
    assert {(r["method"], r["nfe"]) for r in rows} == {("blurry input", "0"), ("DnCNN (trained on camera)", "1"),
                                                        ("hidd fast", "2")}
    printed = capsys.readouterr().out
    assert "| DnCNN (trained on camera) |" in printed and "SSIM per group" in printed
    summary = {r["method"]: r for r in read_csv(out / "summary.csv")}
    percent = 100 * (float(summary["hidd fast"]["psnr"]) - float(summary["blurry input"]["psnr"])) \
        / float(summary["blurry input"]["psnr"])
    assert f"| blurry input | {percent:+.1f} |" in printed  # the paper's % summary, against each other method
    saved = out / "images" / f"dncnn_at_{str(small_dncnn).replace('/', '_')}"
    assert sorted(p.name for p in saved.glob("*.png")) == ["camera_r2.png", "coffee_r2.png"]
    merged = tmp_path / "merged"  # an earlier run's rows join the tables (e.g. a GPU run of a slow preset)
    bench_quality.main(["--benchmark", str(small_benchmark), "--methods", "blurred", "--images", "coffee_r2",
                        "--include", str(out), "--output", str(merged)])
    assert {r["method"] for r in read_csv(merged / "summary.csv")} == {
        "blurry input", "DnCNN (trained on camera)", "hidd fast"}
    with pytest.raises(SystemExit):
        bench_quality.main(["--benchmark", str(small_benchmark), "--methods", "blurred", "--images", "rocket_r2",
                            "--include", str(out), "--output", str(tmp_path / "bad")])


def test_compare_figure_draws_every_method(small_benchmark, tiny_checkpoint, tmp_path):
    pytest.importorskip("matplotlib")
    compare_figure = load_script("compare_figure")
    out = tmp_path / "bq"
    bench_quality.main(["--benchmark", str(small_benchmark), "--methods", "wiener", "--images", "coffee_r2",
                        "--save-images", "--output", str(out)])
    figure = tmp_path / "fig.png"
    compare_figure.main([str(out), "--benchmark", str(small_benchmark), "--images", "coffee_r2",
                         "--methods", "wiener", "--output", str(figure)])
    from hidd.imageio import read_image

    assert read_image(figure, allow_alpha=True).pixels.shape[1] > 300  # three columns: input, Wiener, ground truth
    with pytest.raises(SystemExit):
        compare_figure.main([str(out), "--benchmark", str(small_benchmark), "--images", "coffee_r2",
                             "--methods", "fast", "--output", str(figure)])


def test_profile_sampler_splits_the_wall_time_into_phases(tiny_checkpoint, tmp_path):
    report = tmp_path / "profile.md"
    assert load_script("profile_sampler").main(["--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--presets",
                                                "fast", "--sizes", "128x96", "--iterations", "2", "--output",
                                                str(report)]) == 0
    text = report.read_text()
    wall = float(text.split("Wall time ")[1].split(" s")[0])
    shares = [float(line.split("|")[2]) for line in text.splitlines() if line.startswith("| ")
              and line.split("|")[2].strip().replace(".", "").isdigit()]
    assert len(shares) == 4 and sum(shares) == pytest.approx(wall, abs=0.01)  # network, blind, guard, the rest
    assert shares[0] > 0 and shares[1] > 0  # the network's and the blind estimation's calls were timed
    assert "### fast, 128×96, " in text and "aten::" in text  # the operator table


def test_check_sharp_reads_sharp_photos_in_focus_and_compares_the_result_with_the_photo(tiny_checkpoint, tmp_path,
                                                                                       capsys):
    from skimage import data
    from hidd.imageio import write_image
    check_sharp = load_script("check_sharp")
    photos = tmp_path / "photos"
    write_image(photos / "astronaut.png", data.astronaut()[:300, 100:400] / 255.0)
    write_image(photos / "camera.png", data.camera()[:100, :90] / 255.0)  # grey; too small for a 96² crop
    out = tmp_path / "sharp"
    check_sharp.main(["--photos", str(photos), "--sizes", "64", "96", "--output", str(out),
                      "--checkpoint", str(tiny_checkpoint)])
    rows = read_csv(out / "sharp.csv")
    assert [(r["photo"], r["size"]) for r in rows] == [("astronaut", "64"), ("astronaut", "96"), ("camera", "64")]
    assert all(float(r["radius"]) == 0.0 for r in rows) and (out / "config_fast.yaml").is_file()
    assert "read as blurred: 0" in capsys.readouterr().out
    check_sharp.main(["--photos", str(photos), "--sizes", "64", "--deblur", "--output", str(out),
                      "--checkpoint", str(tiny_checkpoint), "--set", "sampler.num_steps=2"])
    rows = read_csv(out / "sharp.csv")
    in_focus = [r["share"] == "0.0" and r["psnr_vs_photo"] == "inf" for r in rows]
    assert all(in_focus)  # read in focus: the photo back, untouched
    with pytest.raises(SystemExit):
        check_sharp.main(["--photos", str(tmp_path / "none"), "--output", str(out)])
    assert "check_sharp: error:" in capsys.readouterr().err
    (photos / "zz_broken.png").write_bytes(b"not a png")  # a bad photo stops the run, and keeps what it measured
    with pytest.raises(SystemExit):
        check_sharp.main(["--photos", str(photos), "--sizes", "64", "--output", str(out),
                          "--checkpoint", str(tiny_checkpoint)])
    assert "zz_broken.png" in capsys.readouterr().err
    assert [r["photo"] for r in read_csv(out / "sharp.csv")] == ["astronaut", "camera"]
    (photos / "zz_broken.png").unlink()  # through in-focus cameras: each crop as it is, then two camera draws
    check_sharp.main(["--photos", str(photos), "--sizes", "64", "--output", str(out), "--camera-draws", "2",
                      "--checkpoint", str(tiny_checkpoint)])
    rows = read_csv(out / "sharp.csv")
    takes = [(p, c) for p in ("astronaut", "camera") for c in ("", "0", "1")]
    assert [(r["photo"], r["camera"]) for r in rows] == takes
    printed = capsys.readouterr().out
    assert "6 crops of 2 photos; read as blurred: " in printed and " of 4 read blurred; photos: " in printed
    check_sharp.main(["--photos", str(photos), "--sizes", "64", "--output", str(out), "--camera-draws", "1",
                      "--deblur", "--checkpoint", str(tiny_checkpoint), "--set", "sampler.num_steps=2"])
    rows = read_csv(out / "sharp.csv")  # a camera take is also scored against the scene it was made from
    assert [r["photo_vs_scene"] == "" for r in rows] == [True, False, True, False]
    assert all(float(r["psnr_vs_scene"]) < 60 for r in rows if r["camera"])
    assert check_sharp.false_alarm_bound(0, 56) == pytest.approx(1 - 0.05 ** (1 / 56))  # Clopper–Pearson, 0 alarms


def test_make_heldout_renders_reproducible_blurred_pairs_apart_from_hidd(tmp_path):
    # the held-out simulator is a second camera: it must not lean on hidd, and it writes make_benchmark's layout
    from skimage import data
    tree = ast.parse((SCRIPTS / "make_heldout.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name == "hidd" or name.startswith("hidd.") for name in imported)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()[::6, ::6]).save(photos / "astronaut.png")  # 86²
    Image.fromarray(data.chelsea()[::4, ::4]).save(photos / "chelsea.jpg")  # 76×113
    args = ["--photos", str(photos), "--crop", "64", "--short", "0", "--draws", "2", "--rmin", "2", "--rmax", "3"]
    make_heldout.main([*args, "--out", str(tmp_path / "a")])
    make_heldout.main([*args, "--out", str(tmp_path / "b")])
    names = sorted(p.name for p in (tmp_path / "a" / "blurred").iterdir())
    assert names == ["astronaut_d0.png", "astronaut_d1.png", "chelsea_d0.png", "chelsea_d1.png"]
    for name in names:
        assert (tmp_path / "a" / "blurred" / name).read_bytes() == (tmp_path / "b" / "blurred" / name).read_bytes()
        sharp = np.asarray(Image.open(tmp_path / "a" / "sharp" / name), dtype=float)
        blurred = np.asarray(Image.open(tmp_path / "a" / "blurred" / name), dtype=float)
        assert sharp.shape == blurred.shape == (64, 64, 3)
        assert np.abs(np.diff(blurred, axis=1)).mean() < 0.7 * np.abs(np.diff(sharp, axis=1)).mean()
    first, second = ((tmp_path / "a" / "blurred" / f"astronaut_d{k}.png").read_bytes() for k in (0, 1))
    assert first != second  # each draw its own camera
    items = bench_quality.load_benchmark(tmp_path / "a", None)
    assert {group for _, group, *_ in items} == {"heldout"} and all(2 <= r <= 3 for _, _, r, *_ in items)


def test_make_heldout_apertures_and_colour_are_right():
    for blades in (0, 5, 6, 9):
        kernel = make_heldout.aperture(20.0, blades, 0.3, 0.0, 0.0)
        assert abs(kernel.sum() - 1) < 1e-12
        area = 1 / kernel.max()  # fully covered pixels hold 1 / area
        expected = np.pi * 400 if blades == 0 else blades / 2 * 400 * np.sin(2 * np.pi / blades)
        assert abs(area / expected - 1) < 0.02, blades
    assert np.allclose(make_heldout.aperture(4.3, 6, 0.3, 0.2, 0.5), make_heldout.aperture(4.3, 6, 0.3, 0.2, 0.5)[::-1, ::-1])
    for aberration in (1.0, -0.5):  # a > 0: more light at the rim than at the centre; a < 0: less
        kernel = make_heldout.aperture(10.0, 0, 0.0, 0.0, aberration)
        c = kernel.shape[0] // 2
        assert (kernel[c, c + 9] > kernel[c, c]) == (aberration > 0)
    grey = np.full((64, 64, 3), 0.5)  # a flat grey scene stays grey through white balance, mosaic and demosaicing
    args = make_heldout.parse_args(["--photos", ".", "--out", "."])
    out, _ = make_heldout.render(grey, np.random.default_rng(0), 3.0, args)
    assert np.abs(out.reshape(-1, 3).mean(0) - 127.5).max() < 3


def test_make_heldout_refuses_bad_input_in_one_line(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(photos / "a.png")
    with pytest.raises(SystemExit, match="not a folder"):
        make_heldout.main(["--photos", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="smaller than the 128² crop"):
        make_heldout.main(["--photos", str(photos), "--crop", "128", "--short", "0", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit):
        make_heldout.main(["--photos", str(photos), "--rmin", "0", "--out", str(tmp_path / "o")])
    assert "need 0 < --rmin <= --rmax" in capsys.readouterr().err
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(photos / "a.jpg")
    with pytest.raises(SystemExit, match="two photos named a"):
        make_heldout.main(["--photos", str(photos), "--crop", "64", "--short", "0", "--out", str(tmp_path / "o")])
    (photos / "a.jpg").unlink()
    (photos / "b.png").write_bytes(b"not an image")
    with pytest.raises(SystemExit, match="b.png: cannot read it as an image"):
        make_heldout.main(["--photos", str(photos), "--crop", "64", "--short", "0", "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()  # nothing half-made
