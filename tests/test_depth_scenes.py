"""Scenes whose defocus varies with depth in the benchmark scripts: make_benchmark's condition (d) `subject`,
make_heldout's --scene tilt and subject, and bench_quality's PSNR of the in-focus and the defocused regions."""
import json

import numpy as np
import pytest
from PIL import Image

from conftest import load_script, read_csv

make_benchmark, bench_quality, make_heldout = (load_script(n) for n in ("make_benchmark", "bench_quality",
                                                                         "make_heldout"))


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_make_benchmark_adds_subject_pairs_after_the_others_and_leaves_those_as_they_were(tmp_path, monkeypatch):
    args = ["--kind", "camera", "--size", "48", "--levels", "3"]
    with monkeypatch.context() as without:  # the benchmark as it was before condition (d)
        without.setattr(make_benchmark, "subject_pairs", lambda *_: {})
        make_benchmark.main([*args, "--out", str(tmp_path / "before")])
    make_benchmark.main([*args, "--out", str(tmp_path / "after")])
    before, after = _files(tmp_path / "before"), _files(tmp_path / "after")
    pairs = [k for k in before if k.startswith(("blurred/", "sharp/", "radius_maps/"))]
    assert len(pairs) == 2 * 48 + 12 and all(before[k] == after[k] for k in pairs)  # (a)–(c) byte for byte
    meta = json.loads(after["meta.json"])["images"]
    subjects = sorted(k for k, v in meta.items() if v["condition"] == "subject")
    assert subjects == [f"subject_{name}_{k}" for name in sorted(make_benchmark.PHOTOS) for k in range(2)]
    for stem in subjects:
        info = meta[stem]
        rmap = np.load(tmp_path / "after" / info["radius_map"])
        alpha = np.load(tmp_path / "after" / info["alpha"])
        assert rmap.shape == alpha.shape == (48, 48) and 5 <= info["max_radius"] <= 9
        assert np.all(rmap[alpha == 1] == 0) and np.allclose(rmap, info["max_radius"] * (1 - alpha), atol=1e-5)
        assert 0.2 <= alpha.mean() <= 0.45 and 0 < ((alpha > 0) & (alpha < 1)).mean() < 0.2  # a soft edge, not a fog
        assert info["layers"]["radii"] == [info["max_radius"], 0.0] and info["psf"]["radius"] == info["max_radius"]
    items = bench_quality.load_benchmark(tmp_path / "after", None, subjects[:2])
    assert {group for _, group, *_ in items} == {"subject"}


def test_subject_masks_are_one_soft_edged_blob_of_their_share():
    from scipy import ndimage
    rng = make_benchmark.random.Random(3)
    for _ in range(4):
        alpha = make_benchmark.subject_mask(rng, 64)
        assert 0.2 <= alpha.mean() <= 0.45
        assert ndimage.label(alpha > 0)[1] == 1 and (alpha == 1).any()  # one region, opaque inside
        edge = (alpha > 0) & (alpha < 1)
        solid = alpha >= 0.5
        outline = ndimage.binary_dilation(solid ^ ndimage.binary_erosion(solid), iterations=2)
        assert edge.any() and not (edge & ~outline).any()  # partly covered pixels only along its outline


def _fabricated_benchmark(root):
    """Two 8-bit pairs whose errors are known: a subject pair (radius map) off by 3/255 in focus and 30/255 where
    defocused, and a uniform pair. The map's 1.0 px pixels count as defocused."""
    g = np.random.default_rng(0)
    sharp = g.integers(40, 200, size=(32, 32, 3)).astype(np.uint8)
    rmap = np.full((32, 32), 6.0, np.float32)
    rmap[8:24, 4:20] = 0.0
    rmap[8:24, 20] = 1.0  # the bound: defocused
    rmap[8:24, 3] = 0.999  # just below it: in focus
    error = np.where(rmap[..., None] < 1, 3, 30) * g.choice([-1, 1], size=(32, 32, 3))
    for name, blurred in (("subject_a", sharp + error), ("lens_b", sharp + 5)):
        for sub, image in (("sharp", sharp), ("blurred", blurred)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(image, np.uint8)).save(root / sub / f"{name}.png")
    (root / "radius_maps").mkdir()
    np.save(root / "radius_maps" / "subject_a.npy", rmap)
    meta = {"subject_a": {"condition": "subject", "radius": "depth-varying", "radius_map": "radius_maps/subject_a.npy",
                          "tone_curve": "srgb"},
            "lens_b": {"condition": "lens", "radius": 3.0, "tone_curve": "srgb"}}
    (root / "meta.json").write_text(json.dumps({"images": meta}))


def test_bench_quality_scores_the_in_focus_and_the_defocused_pixels_apart(tmp_path, capsys):
    _fabricated_benchmark(tmp_path / "bench")
    out = tmp_path / "bq"
    bench_quality.main(["--benchmark", str(tmp_path / "bench"), "--methods", "blurred", "wiener",
                        "--output", str(out)])
    rows = {(r["method"], r["image"]): r for r in read_csv(out / "per_image.csv")}
    blurred = rows["blurry input", "subject_a"]
    assert float(blurred["psnr_in_focus"]) == pytest.approx(20 * np.log10(255 / 3))
    assert float(blurred["psnr_defocused"]) == pytest.approx(20 * np.log10(255 / 30))
    assert float(blurred["gain_in_focus"]) == 0 and blurred["group"] == "subject"
    assert all(rows["blurry input", "lens_b"][k] == "nan" for k in bench_quality.REGIONS)  # no map, no regions
    wiener = rows["Wiener (oracle PSF, tuned)", "subject_a"]
    assert float(wiener["gain_defocused"]) == pytest.approx(float(wiener["psnr_defocused"])
                                                           - float(blurred["psnr_defocused"]))
    printed = capsys.readouterr().out
    assert "| method | group | PSNR in focus | gain in focus | PSNR defocused | gain defocused |" in printed
    in_focus, defocused = 20 * np.log10(255 / 3), 20 * np.log10(255 / 30)
    assert f"| blurry input | subject | {in_focus:.2f} | +0.00 | {defocused:.2f} |" in printed
    summary = read_csv(out / "summary.csv")[0]
    assert float(summary["psnr_in_focus_subject"]) == pytest.approx(20 * np.log10(255 / 3))
    merged = tmp_path / "merged"  # an earlier run's rows keep their regions
    bench_quality.main(["--benchmark", str(tmp_path / "bench"), "--methods", "blurred", "--include", str(out),
                        "--output", str(merged)])
    again = {(r["method"], r["image"]): r for r in read_csv(merged / "per_image.csv")}
    assert again["Wiener (oracle PSF, tuned)", "subject_a"]["psnr_in_focus"] == wiener["psnr_in_focus"]


@pytest.fixture(scope="module")
def two_photos(tmp_path_factory):
    from skimage import data
    photos = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.astronaut()[::6, ::6]).save(photos / "astronaut.png")  # 86²
    Image.fromarray(data.chelsea()[::4, ::4]).save(photos / "chelsea.jpg")  # 76×113
    return photos


@pytest.mark.parametrize("scene", ["tilt", "subject"])
def test_make_heldout_depth_scenes_write_radius_maps_and_keep_their_sharp_part_sharp(two_photos, tmp_path, scene):
    args = ["--photos", str(two_photos), "--crop", "64", "--short", "0", "--rmin", "5", "--rmax", "6",
            "--scene", scene, "--seed", "4"]
    make_heldout.main([*args, "--out", str(tmp_path / "a")])
    make_heldout.main([*args, "--out", str(tmp_path / "b")])
    make_heldout.main([*args[:-4], "--seed", "4", "--out", str(tmp_path / "uniform")])
    assert {k: v for k, v in _files(tmp_path / "a").items() if k != "meta.json"} == \
        {k: v for k, v in _files(tmp_path / "b").items() if k != "meta.json"}  # reproducible
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["settings"]["scene"] == scene
    assert "scene" not in json.loads((tmp_path / "uniform" / "meta.json").read_text())["settings"]
    for name in ("astronaut", "chelsea"):
        info = meta["images"][name]
        rmap = np.load(tmp_path / "a" / info["radius_map"])
        assert info["condition"] == {"tilt": "depth", "subject": "subject"}[scene]
        assert info["radius"] == "depth-varying"
        assert rmap.shape == (64, 64) and 5 <= info["max_radius"] <= 6
        assert rmap.min() < 0.05 and rmap.max() == pytest.approx(info["max_radius"], abs=1e-3)
        assert 0.05 < (rmap < 1).mean() < 0.6  # part of the frame is sharp, most is not
        if scene == "subject":
            assert 0.2 * 0.5 <= info["scene"]["covered"] <= 0.45  # the frame may cut the blob
        blurred, uniform = ((tmp_path / d / "blurred" / f"{name}.png").read_bytes() for d in ("a", "uniform"))
        assert blurred != uniform
    items = bench_quality.load_benchmark(tmp_path / "a", None)
    maps = bench_quality.load_radius_maps(tmp_path / "a", items)
    uniform = {name: blurred for name, _, _, blurred, _, _ in bench_quality.load_benchmark(tmp_path / "uniform", None)}
    for name, group, _, blurred, sharp, _ in items:
        assert group == {"tilt": "depth", "subject": "subject"}[scene]
        # the same draw (radius, lens, sensor) defocusing the whole frame at the top radius, scored on this map:
        # the scene's sharp part is much better; a subject's background is as blurred as that
        scores = bench_quality.region_scores(blurred, uniform[name], sharp, maps[name])
        assert scores["gain_in_focus"] > 2, name
        if scene == "subject":
            assert abs(scores["gain_defocused"]) < 0.5, name
        else:
            assert scores["gain_defocused"] > 0.5, name  # most of the plane is nearer focus than its far edge


def test_make_heldout_subject_occludes_with_its_own_model():
    # an in-focus red blob on a flat green background: the background right beside it stays green
    from scipy import ndimage
    scene = {"centre": [0.5, 0.5], "fraction": 0.3, "amplitudes": [0.1, 0.0, 0.05, 0.0], "phases": [0.0] * 4}
    alpha = make_heldout.subject_alpha((64, 64), scene)
    assert abs(alpha.mean() - 0.3) < 0.03 and ndimage.label(alpha > 0)[1] == 1
    green, red = np.array([0.05, 0.4, 0.1]), np.array([0.8, 0.05, 0.05])
    linear = alpha[..., None] * red + (1 - alpha[..., None]) * green
    draw = {"radius": 6.0, "blades": 0, "rotation": 0.0, "roundness": 0.0, "aberration": 0.0, "colour_scale": 0.0,
            "diffraction": 0.5}
    out = make_heldout.subject_optics(linear, alpha, draw)
    beyond = ndimage.distance_transform_edt(alpha == 0)
    deep = ndimage.distance_transform_edt(alpha == 1)
    assert np.abs(out[beyond > 3] - green).max() < 1e-6  # no subject colour beside it, no dark halo
    assert np.abs(out[deep > 3] - red).max() < 1e-6  # the subject itself sharp
