"""Known defocus from files (hidd.known_blur) and through hidd-reconstruct --radius-maps / --layers."""
import numpy as np
import pytest
import torch
import yaml

from conftest import read_csv, synthetic_photo
from hidd.camera.optics import Layers
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.deblur import Deblurrer
from hidd.imageio import ImageError, read_image, write_image
from hidd.known_blur import KnownBlur, read_layers, read_radius_map, save_layers
from hidd.prior import load_prior

SIZE = 32


def _subject(size=SIZE) -> Layers:
    alpha = torch.zeros(size, size)
    alpha[8:24, 10:22] = 1.0
    return Layers.subject(alpha, background=3.0)


def test_a_radius_map_is_read_as_it_was_saved(tmp_path):
    radius = np.random.default_rng(0).uniform(0, 5, (SIZE, SIZE + 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", radius)
    read = read_radius_map(tmp_path / "a.npy", (SIZE, SIZE + 4))
    assert read.dtype == torch.float32 and torch.equal(read, torch.from_numpy(radius))


def test_layers_are_read_as_they_were_saved(tmp_path):
    scene = _subject()
    save_layers(tmp_path / "a.npz", scene)
    read = read_layers(tmp_path / "a.npz", (SIZE, SIZE))
    assert read.radii == scene.radii and torch.equal(read.alphas, scene.alphas)
    assert torch.equal(read.radius_map(), scene.radius_map())


@pytest.mark.parametrize("array, phrase", [
    (np.ones((SIZE, SIZE + 1), np.float32), "radius map is 33x32 but its photo is 32x32"),
    (np.full((SIZE, SIZE), -1.0), "negative radii"),
    (np.full((SIZE, SIZE), np.nan), "non-finite"),
    (np.ones((1, SIZE, SIZE)), "2-D array"),
    (np.array([["a"]]), "2-D array of numbers"),
])
def test_a_bad_radius_map_is_one_line_naming_its_file(tmp_path, array, phrase):
    np.save(tmp_path / "a.npy", array)
    with pytest.raises(ImageError, match=phrase) as caught:
        read_radius_map(tmp_path / "a.npy", (SIZE, SIZE))
    assert str(caught.value).startswith(str(tmp_path / "a.npy")) and "\n" not in str(caught.value)


def test_an_unreadable_file_is_one_line(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"not an array")
    (tmp_path / "b.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ImageError, match="cannot be read as a radius map"):
        read_radius_map(tmp_path / "a.npy", (SIZE, SIZE))
    with pytest.raises(ImageError, match="cannot be read as layers"):
        read_layers(tmp_path / "b.npz", (SIZE, SIZE))


@pytest.mark.parametrize("arrays, phrase", [
    ({"alphas": np.ones((2, SIZE, SIZE))}, "has no 'radii'"),
    ({"alphas": np.ones((2, SIZE, SIZE)), "radii": np.ones(3)}, "3 radii for 2 layer coverages"),
    ({"alphas": np.ones((1, SIZE, 8)), "radii": np.ones(1)}, "layers are 8x32 but their photo is 32x32"),
    ({"alphas": np.full((1, SIZE, SIZE), 1.5), "radii": np.ones(1)}, r"alphas must lie in \[0, 1\]"),
    ({"alphas": np.ones((1, SIZE, SIZE)), "radii": -np.ones(1)}, "radii must be"),
])
def test_bad_layers_are_one_line_naming_their_file(tmp_path, arrays, phrase):
    np.savez(tmp_path / "a.npz", **arrays)
    with pytest.raises(ImageError, match=phrase) as caught:
        read_layers(tmp_path / "a.npz", (SIZE, SIZE))
    assert str(caught.value).startswith(str(tmp_path / "a.npz"))


def _damaged(path, compressed: bool):
    """An .npz whose archive opens but whose member cannot be read (a flipped byte inside its data)."""
    (np.savez_compressed if compressed else np.savez)(path, alphas=np.random.default_rng(0).random((1, SIZE, SIZE)),
                                                      radii=np.ones(1))
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("make", ["objects", "crc", "deflate", "folder", "archive as .npy"])
def test_a_file_numpy_cannot_read_is_one_line_naming_it(tmp_path, make):
    path = tmp_path / ("a.npy" if make in ("folder", "archive as .npy") else "a.npz")
    if make == "objects":
        np.savez(path, alphas=np.array([{"a": 1}], dtype=object), radii=np.ones(1))
    elif make in ("crc", "deflate"):
        _damaged(path, compressed=make == "deflate")
    elif make == "folder":
        path.mkdir()
    else:
        np.savez(tmp_path / "x.npz", a=np.ones(2))
        (tmp_path / "x.npz").rename(path)
    read = read_radius_map if path.suffix == ".npy" else read_layers
    with pytest.raises(ImageError) as caught:
        read(path, (SIZE, SIZE))
    line = str(caught.value)
    assert line.startswith(str(path)) and "\n" not in line
    assert ("is a .npz archive" if make == "archive as .npy" else "cannot be read as") in line


def test_boolean_alphas_are_a_mask(tmp_path):
    alpha = np.zeros((2, SIZE, SIZE), bool)
    alpha[0] = True
    alpha[1, 4:20, 4:20] = True
    np.savez(tmp_path / "a.npz", alphas=alpha, radii=np.array([5.0, 0.0]))
    scene = read_layers(tmp_path / "a.npz", (SIZE, SIZE))
    assert scene.alphas.dtype == torch.float32 and torch.equal(scene.alphas, torch.from_numpy(alpha).float())


def test_a_missing_file_names_the_photo_and_the_folder(tmp_path):
    with pytest.raises(ImageError, match="every photo needs its radius map") as caught:
        KnownBlur("radius_maps", tmp_path).read("photo7", (SIZE, SIZE))
    assert str(caught.value).startswith(str(tmp_path / "photo7.npy"))


def _photos(folder, n=3):
    folder.mkdir()
    for i in range(n):
        write_image(folder / f"p{i}.png", synthetic_photo(i, SIZE))
    return folder


def _reconstruct(checkpoint, source, out, *extra):
    with pytest.raises(SystemExit) as code:
        reconstruct_main(["--input", str(source), "--output", str(out), "--checkpoint", str(checkpoint),
                          "--seed", "3", *extra])
        raise SystemExit(0)
    return code.value.code


def _api(checkpoint, source, **known):
    """What the Python API gives for each photo with its known defocus (the depth preset, seed 3)."""
    prior = load_prior(checkpoint, preset="depth")
    outs = {}
    for path in sorted(source.glob("*.png")):
        y = torch.from_numpy(read_image(path).pixels).permute(2, 0, 1)[None].float()
        given = {key: value(path.stem) for key, value in known.items()}
        outs[path.stem] = Deblurrer(prior)(y, seed=3, **given).images[0].permute(1, 2, 0).numpy()
    return outs


def test_known_radius_maps_reach_the_data_step_through_the_cli(tiny_checkpoint, tmp_path):
    source, maps = _photos(tmp_path / "in"), tmp_path / "maps"
    maps.mkdir()
    radii = {"p0": np.zeros((SIZE, SIZE)), "p1": np.full((SIZE, SIZE), 3.0),
             "p2": np.tile(np.linspace(0, 4, SIZE), (SIZE, 1))}
    for stem, radius in radii.items():
        np.save(maps / f"{stem}.npy", radius.astype(np.float32))
    assert _reconstruct(tiny_checkpoint, source, tmp_path / "out", "--radius-maps", str(maps)) == 0
    expected = _api(tiny_checkpoint, source, radius_map=lambda stem: torch.from_numpy(radii[stem]).float()[None])
    for stem in radii:
        got = read_image(tmp_path / "out" / f"{stem}.png").pixels
        assert np.abs(got - expected[stem]).max() <= 1 / 255 + 1e-6, stem
    assert _reconstruct(tiny_checkpoint, source, tmp_path / "batched", "--radius-maps", str(maps),
                        "--batch-size", "3") == 0  # the three photos' maps sampled together: the same outputs
    for stem in radii:
        alone, batched = (read_image(tmp_path / run / f"{stem}.png").pixels for run in ("out", "batched"))
        assert np.abs(alone - batched).max() <= 1 / 255 + 1e-6, stem
    photo = read_image(source / "p0.png").pixels
    assert np.array_equal(read_image(tmp_path / "out" / "p0.png").pixels, photo)  # read in focus: as it was
    assert np.abs(read_image(tmp_path / "out" / "p1.png").pixels - read_image(source / "p1.png").pixels).max() > 0.02
    config = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert config["sampler"]["radius_map"] is not False  # the depth preset, since neither --preset nor --config
    options = yaml.safe_load((tmp_path / "out" / "run.yaml").read_text())
    assert options["known_defocus"] == {"kind": "radius_maps", "folder": str(maps.resolve())}


def test_known_layers_reach_the_occluding_data_step_through_the_cli(tiny_checkpoint, tmp_path):
    source, layers = _photos(tmp_path / "in", n=1), tmp_path / "layers"
    layers.mkdir()
    save_layers(layers / "p0.npz", _subject())
    assert _reconstruct(tiny_checkpoint, source, tmp_path / "out", "--layers", str(layers)) == 0
    expected = _api(tiny_checkpoint, source, layers=lambda stem: [_subject()])["p0"]
    as_map = _api(tiny_checkpoint, source, radius_map=lambda stem: _subject().radius_map()[None])["p0"]
    got = read_image(tmp_path / "out" / "p0.png").pixels
    assert np.abs(got - expected).max() <= 1 / 255 + 1e-6
    assert np.abs(got - as_map).max() > 2 / 255  # the occluding step, not the gather step of the same radii


def test_a_photo_without_its_known_map_or_with_a_bad_one_fails_alone(tiny_checkpoint, tmp_path, capsys):
    source, maps = _photos(tmp_path / "in", n=3), tmp_path / "maps"
    maps.mkdir()
    np.save(maps / "p1.npy", np.full((SIZE, SIZE), 2.0, np.float32))
    np.save(maps / "p0.npy", np.full((SIZE, 8), 2.0, np.float32))  # and none for p2
    assert _reconstruct(tiny_checkpoint, source, tmp_path / "out", "--radius-maps", str(maps)) == 1
    err = capsys.readouterr().err
    assert f"{maps / 'p0.npy'}: radius map is 8x32 but its photo is 32x32" in err
    assert f"{maps / 'p2.npy'}: no such file: every photo needs its radius map (p2.npy in {maps})" in err
    assert [row["name"] for row in read_csv(tmp_path / "out" / "metrics.csv")] == ["p1"]


def test_nested_photos_find_their_files_by_their_results_names(tiny_checkpoint, tmp_path):
    source, layers = tmp_path / "in", tmp_path / "layers"
    (source / "sub").mkdir(parents=True)
    layers.mkdir()
    write_image(source / "sub" / "a.png", synthetic_photo(0, SIZE))
    save_layers(layers / "sub_a.npz", _subject())
    assert _reconstruct(tiny_checkpoint, source, tmp_path / "out", "--layers", str(layers)) == 0
    assert (tmp_path / "out" / "sub_a.png").is_file()


def test_a_resume_must_read_the_same_known_maps(tiny_checkpoint, tmp_path, capsys):
    source, maps = _photos(tmp_path / "in", n=1), tmp_path / "maps"
    maps.mkdir()
    np.save(maps / "p0.npy", np.full((SIZE, SIZE), 2.0, np.float32))
    (tmp_path / "other").mkdir()
    assert _reconstruct(tiny_checkpoint, source, tmp_path / "out", "--radius-maps", str(maps)) == 0
    for extra in (["--radius-maps", str(tmp_path / "other")], ["--preset", "depth"]):
        capsys.readouterr()
        assert _reconstruct(tiny_checkpoint, source, tmp_path / "out", "--skip-existing", *extra) == 2
        assert "come from other run options (known_defocus" in capsys.readouterr().err
    assert _reconstruct(tiny_checkpoint, source, tmp_path / "out", "--skip-existing", "--radius-maps", str(maps)) == 0


@pytest.mark.parametrize("extra, phrase", [
    (["--preset", "fast"], "--radius-maps needs a sampler with a spatially varying data step"),
    (["--method", "dncnn"], "--radius-maps configures the diffusion sampler"),
    (["--layers", "x"], "not allowed with argument"),
])
def test_known_maps_with_a_sampler_that_cannot_use_them_are_a_usage_error(tiny_checkpoint, tmp_path, capsys, extra,
                                                                          phrase):
    source, maps = _photos(tmp_path / "in", n=1), tmp_path / "maps"
    maps.mkdir()
    assert _reconstruct(tiny_checkpoint, source, tmp_path / "out", "--radius-maps", str(maps), *extra) == 2
    assert phrase in capsys.readouterr().err
    assert not (tmp_path / "out" / "metrics.csv").exists()


def test_a_missing_known_folder_is_a_usage_error(tiny_checkpoint, tmp_path, capsys):
    source = _photos(tmp_path / "in", n=1)
    assert _reconstruct(tiny_checkpoint, source, tmp_path / "out", "--layers", str(tmp_path / "none")) == 2
    assert f"--layers {tmp_path / 'none'}: no such folder" in capsys.readouterr().err
    assert _reconstruct(tiny_checkpoint, source, tmp_path / "out", "--radius-maps", "") == 2
    assert "--radius-maps: give the folder of the photos' files" in capsys.readouterr().err


def test_known_maps_do_not_read_or_record_the_learned_maps_network(tiny_checkpoint, tmp_path):
    source, maps = _photos(tmp_path / "in", n=1), tmp_path / "maps"
    maps.mkdir()
    np.save(maps / "p0.npy", np.full((SIZE, SIZE), 2.0, np.float32))
    out = tmp_path / "out"
    assert _reconstruct(tiny_checkpoint, source, out, "--radius-maps", str(maps), "--set", "sampler.radius_map=learned",
                        "--set", f"sampler.map_network={tmp_path / 'gone.pt'}") == 0
    assert (out / "p0.png").is_file() and "map_network" not in yaml.safe_load(open(out / "run.yaml"))
