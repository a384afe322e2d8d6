"""The learned defocus map: its training scenes (hidd.camera.scenes), network (hidd.blind.map_net), training loop
(hidd.map_train) and its place among the map estimators (hidd.blind.map_estimators, sampler.radius_map)."""
import csv
import random
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_script, synthetic_photo
from hidd.blind import map_net
from hidd.blind.map_estimators import MAP_ESTIMATORS, estimator_name
from hidd.blind.map_net import MapNet, learned_defocus_map, load_network, map_loss, save_network
from hidd.camera.scenes import FOCUS_TOP, SCENE_KINDS, sample_scene, subject_mask, tilted_plane
from hidd.checkpoint import CheckpointError
from hidd.config import Config, ConfigError, apply_overrides
from hidd.settings import check_values

TINY = (4, 4, 6, 6)  # feature sizes of the networks trained here


def crop(seed: int, size: int = 48) -> torch.Tensor:
    return torch.from_numpy(synthetic_photo(seed, size)).permute(2, 0, 1)


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_each_scene_kind_renders_a_photo_and_its_true_radii_the_same_for_the_same_seed(kind):
    scenes = [sample_scene(random.Random(seed), crop(0), kinds=(kind,), max_radius=6.0) for seed in (3, 3, 4)]
    first, again, other = scenes
    assert first.kind == kind and first.photo.shape == (3, 48, 48) and first.radius.shape == (48, 48)
    assert 0 <= float(first.photo.min()) and float(first.photo.max()) <= 1
    assert 0 <= float(first.radius.min()) and float(first.radius.max()) <= 6.0 + 1e-6
    assert torch.equal(first.photo, again.photo) and torch.equal(first.radius, again.radius)
    assert not torch.equal(first.photo, other.photo)
    if kind == "subject":  # an in-focus subject before a background at FOCUS_TOP or more
        assert float(first.radius.min()) == 0.0 and float(first.radius.max()) >= FOCUS_TOP
    if kind == "uniform":
        assert float(first.radius.std()) == 0.0


def test_uniform_scenes_include_in_focus_ones_and_wrong_input_is_refused():
    radii = [float(sample_scene(random.Random(s), crop(1, 32), kinds=("uniform",)).radius[0, 0]) for s in range(12)]
    assert 0.0 in radii and max(radii) > 0
    with pytest.raises(ValueError, match="unknown scene kinds"):
        sample_scene(random.Random(0), crop(1, 32), kinds=("tilted",))
    with pytest.raises(ValueError, match="square crop"):
        sample_scene(random.Random(0), crop(1, 32)[:, :16])


def test_the_benchmark_layouts_moved_from_make_benchmark_draw_what_they_drew():
    """Sums of the layouts scripts/make_benchmark.py drew before they moved to hidd.camera.scenes (same seeds)."""
    make_benchmark = load_script("make_benchmark")
    assert make_benchmark.tilted_plane is tilted_plane and make_benchmark.subject_mask is subject_mask
    for seed, plane, mask, moment in ((5, 498.0678666010499, 637.375, 19212.6875),
                                      (11, 520.8686670213938, 697.625, 14223.75)):
        assert float(tilted_plane(random.Random(seed), 32).double().abs().sum()) == pytest.approx(plane, rel=1e-9)
        alpha = subject_mask(random.Random(seed), 48)
        assert float(alpha.sum()) == mask and float((alpha * np.arange(48)).sum()) == moment


def test_the_network_reads_any_size_and_its_loss_falls_in_a_few_steps(one_thread):
    torch.manual_seed(0)
    net = MapNet(TINY)
    radius, scale = net(torch.rand(2, 3, 37, 45))
    assert radius.shape == scale.shape == (2, 37, 45) and bool((radius >= 0).all() and (scale > 0).all())
    scenes = [sample_scene(random.Random(s), crop(s, 32)) for s in range(4)]
    y, true = torch.stack([s.photo for s in scenes]), torch.stack([s.radius for s in scenes])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = map_loss(*net(y), true)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_a_checkpoint_round_trips_and_a_bad_one_is_one_line_naming_the_file(tmp_path):
    torch.manual_seed(1)
    net = MapNet(TINY).eval()
    path = tmp_path / "map.pt"
    save_network(net, path, {"model": {"features": list(TINY)}})
    loaded = load_network(path)
    photo = crop(2, 40)
    found, expected = learned_defocus_map(photo, loaded), learned_defocus_map(photo, net)
    assert torch.equal(found.radius, expected.radius) and found.radius.shape == (40, 40)
    assert bool((found.confidence > 0).all() and (found.confidence <= 1).all()) and np.isfinite(found.tiles).all()
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'none.pt'}: defocus map checkpoint not found"):
        load_network(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: ") as refused:
        load_network(tmp_path / "junk.pt")
    assert "\n" not in str(refused.value)
    save_network(net, tmp_path / "other.pt", {"model": {"features": [4, 4, 6, 8]}})
    with pytest.raises(CheckpointError, match="other.pt: does not match the model config"):
        load_network(tmp_path / "other.pt")
    torch.save({"kind": "dncnn", "config": {}, "model": net.state_dict()}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign.pt: not a defocus map checkpoint"):
        load_network(tmp_path / "foreign.pt")


@pytest.mark.parametrize("value, name", [("true", "edges"), ("false", None), ("edges", "edges"),
                                         ("learned", "learned")])
def test_radius_map_takes_false_edges_learned_and_true_as_edges(value, name):
    cfg = apply_overrides(Config(), [f"sampler.radius_map={value}"])
    check_values(cfg)
    assert estimator_name(cfg.sampler.radius_map) == name
    assert (name is None) == (not cfg.sampler.radius_map)


@pytest.mark.parametrize("value", ["learnd", "Edges", "none"])
def test_radius_map_refuses_anything_else_in_one_line(value):
    with pytest.raises(ConfigError, match="sampler.radius_map: .* choose from false, edges, learned"):
        check_values(apply_overrides(Config(), [f"sampler.radius_map={value}"]))
    with pytest.raises(ValueError, match="unknown radius map estimator"):
        MAP_ESTIMATORS.get("learnd")
    with pytest.raises(ConfigError, match="sampler.radius_map: expected bool or str, got 1"):
        apply_overrides(Config(), ["sampler.radius_map=1"])


@pytest.fixture
def tiny_map(tmp_path, monkeypatch):
    """A tiny untrained network in place of checkpoints/defocus_map.pt."""
    torch.manual_seed(2)
    path = tmp_path / "defocus_map.pt"
    save_network(MapNet(TINY), path, {"model": {"features": list(TINY)}})
    monkeypatch.setattr(map_net, "CHECKPOINT", path)
    return path


def _operator(y, radius_map, map_network=""):
    from hidd.measurement import measurement_model
    cfg = apply_overrides(Config(), [f"sampler.radius_map={radius_map}", "sampler.psf=disk", "sampler.softening=0.5",
                                     "sampler.noise_sigma=0.01", f"sampler.map_network={map_network}"]).sampler
    return measurement_model(y, cfg)


def test_a_photos_learned_map_does_not_depend_on_its_batch(tiny_map, one_thread):
    y = torch.stack([crop(s, 48) for s in range(3)])
    together = _operator(y, "learned").radius_map[:, 0]
    for i in range(3):
        assert torch.equal(_operator(y[i:i + 1], "learned").radius_map[0, 0], together[i])
    gray = _operator(y[:2, :1], "learned").radius_map  # a 1-channel layout (a gray prior) reads too
    assert gray.shape == (2, 1, 48, 48)


def test_the_learned_map_is_scaled_by_the_photos_spectra_and_held_under_the_blur_its_edges_allow(tiny_map,
                                                                                                   monkeypatch):
    from hidd.blind.defocus_map import DefocusMap, edge_ceiling
    from hidd.blind.radius_map import map_scale
    from hidd.camera.tone import tone_curve

    photo = crop(5, 64).float()
    linear = tone_curve("srgb").decode(photo)
    reading = torch.full((64, 64), 8.0)  # a network that over-reads everywhere
    monkeypatch.setattr(map_net, "learned_defocus_map",
                        lambda photo, net, tile: DefocusMap(reading, torch.ones(64, 64), np.zeros((1, 1))))
    found = MAP_ESTIMATORS.get("learned")()(photo, linear, 0.002, 32)
    ceiling = edge_ceiling(linear, 0.002, 32)
    scale = map_scale(reading, linear, tile=32)
    assert torch.equal(found.radius, torch.minimum((reading * scale).clamp(max=12.0), ceiling))
    assert float(found.radius.min()) < 2.0  # the photo's sharp edges hold it in focus there


def test_the_learned_map_reads_a_linear_photo_as_the_srgb_photo_it_was_trained_on(tiny_map, monkeypatch):
    from hidd.blind.map_net import TRAINED_TONE
    from hidd.camera.tone import tone_curve

    seen = []
    real = map_net.learned_defocus_map
    monkeypatch.setattr(map_net, "learned_defocus_map", lambda photo, net, tile: seen.append(photo) or real(photo, net,
                                                                                                           tile))
    encoded = crop(6, 64).double()
    linear = tone_curve("srgb").decode(encoded)
    learned = MAP_ESTIMATORS.get("learned")()
    as_srgb = learned(encoded, linear, 0.002, 32)  # sampler.tone_curve srgb: the photo as its file holds it
    as_linear = learned(linear, linear, 0.002, 32)  # sampler.tone_curve none: the same light, values linear
    assert TRAINED_TONE == "srgb" and torch.allclose(seen[0], encoded, atol=1e-6) and torch.equal(seen[0], seen[1])
    assert torch.equal(as_srgb.radius, as_linear.radius)


def test_a_learned_map_read_at_half_the_blur_is_brought_to_the_blur_by_the_photos_spectra(tiny_map, monkeypatch):
    from skimage import data, transform

    from hidd.blind.defocus_map import DefocusMap
    from hidd.camera.optics import blur
    from hidd.camera.psf import LensPSF
    from hidd.camera.tone import tone_curve

    srgb = tone_curve("srgb")
    linear = srgb.decode(torch.from_numpy(transform.resize(data.camera(), (192, 192), anti_aliasing=True))[None])
    blurred = blur(linear[None], LensPSF(5.0).kernels(1, torch.float64)[None])[0]  # 5 px everywhere
    half = torch.full((192, 192), 2.5)
    monkeypatch.setattr(map_net, "learned_defocus_map",
                        lambda photo, net, tile: DefocusMap(half, torch.ones(192, 192), np.zeros((1, 1))))
    found = MAP_ESTIMATORS.get("learned")()(srgb.encode(blurred), blurred, 1e-3, 64)
    assert 3.75 <= float(found.radius.median()) <= 6.25, float(found.radius.median())


def test_the_learned_map_without_its_checkpoint_is_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(map_net, "CHECKPOINT", tmp_path / "gone.pt")
    with pytest.raises(CheckpointError, match="gone.pt: defocus map checkpoint not found"):
        _operator(crop(0, 32)[None], "learned")


def test_training_runs_resumes_and_exports(tmp_path, one_thread):
    from hidd.map_train import load_map_config, train_map
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, stem in enumerate(["a", "b", "kept_out"]):
        Image.fromarray((synthetic_photo(i, 48) * 255).astype(np.uint8)).save(photos / f"{stem}.png")
    sets = [f"data.photos={photos}", "data.held_out=[kept_out]", "data.crop=32", "training.batch_size=2",
            "training.steps=2", "training.latest_every=1", "training.eval_every=1", "training.eval_scenes=2",
            "model.features=[4,4,6,6]"]
    cfg = load_map_config("configs/maps/defocus_map.yaml", sets)
    out = train_map(cfg, tmp_path / "run")
    latest = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=True)["model"]
    exported = load_network(out).state_dict()
    assert exported.keys() == latest.keys() and all(torch.equal(exported[k], latest[k]) for k in latest)
    with pytest.raises(ValueError, match="holds a run already"):
        train_map(cfg, tmp_path / "run")
    train_map(load_map_config("configs/maps/defocus_map.yaml", sets[:-4] + ["training.steps=3", sets[-1]]),
              tmp_path / "run", resume=True)
    assert torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=True)["step"] == 3
    with pytest.raises(ValueError, match="held-out photos not found: nothere"):
        train_map(load_map_config("configs/maps/defocus_map.yaml", sets + ["data.held_out=[nothere]"]), tmp_path / "x")
    with pytest.raises(ConfigError, match="scenes.weights"):
        load_map_config("configs/maps/defocus_map.yaml", ["scenes.weights=[1, 1]"])
    with pytest.raises(ConfigError, match="scenes.max_radius: 1.0 is not valid; it must be a number ≥ 2"):
        load_map_config("configs/maps/defocus_map.yaml", ["scenes.max_radius=1"])
    for key, value, phrase in (("model.features", "[8, 8, 8]", "four sizes"), ("data.crop", "8", "≥ 16"),
                               ("training.lr_decay_from", "1.5", r"in \[0, 1\]"), ("training.workers", "-1", "≥ 0"),
                               ("training.eval_scenes", "0", "≥ 1"), ("scenes.weights", "[0, 0, 0, 0]", "not all 0")):
        with pytest.raises(ConfigError, match=f"^{key}: .* is not valid; .*{phrase}"):
            load_map_config("configs/maps/defocus_map.yaml", [f"{key}={value}"])


def test_the_depth_preset_runs_end_to_end_with_the_learned_map(tmp_path, tiny_map, one_thread):
    from conftest import make_tiny_checkpoint
    from hidd.deblur import Deblurrer
    from hidd.prior import load_prior

    prior = load_prior(make_tiny_checkpoint(tmp_path / "tiny.pt"), preset="depth",
                       overrides=["sampler.radius_map=learned", "sampler.num_steps=2"])
    y = crop(5, 48)[None].float()
    out = Deblurrer(prior)(y)
    assert out.images.shape == y.shape and bool(torch.isfinite(out.images).all())


def test_the_shipped_network_is_small_and_reads_a_sharp_photo_in_focus_and_a_blurred_one_defocused(one_thread):
    from skimage import data, transform

    from hidd.blind.defocus_map import FOCUS_RADIUS
    from hidd.camera.draws import lens_camera

    assert map_net.CHECKPOINT.stat().st_size <= 2_000_000
    net = load_network()
    assert sum(p.numel() for p in net.parameters()) <= 300_000
    sharp = torch.from_numpy(transform.resize(data.astronaut(), (128, 128), anti_aliasing=True)).permute(2, 0, 1)
    read = {}
    for radius in (0.0, 6.0):  # through a random lens camera: softening, noise, demosaicing, JPEG
        photo = lens_camera(random.Random(1), radius).render(sharp[None].float(),
                                                             generator=torch.Generator().manual_seed(1))
        read[radius] = float(learned_defocus_map(photo[0], net).radius.median())
    assert read[0.0] < FOCUS_RADIUS and 3.5 <= read[6.0] <= 9.0, read


def test_the_loss_is_the_absolute_error_at_the_median_and_costs_over_reading_more_below_it():
    true, scale = torch.full((1, 4, 4), 3.0), torch.ones(1, 4, 4)
    nll = float(map_net.laplace_nll(torch.full_like(true, 3.0), scale, true))
    over, under = torch.full_like(true, 4.0), torch.full_like(true, 2.0)
    assert float(map_loss(over, scale, true)) == pytest.approx(1.0 + 1.0 + nll)
    assert float(map_loss(over, scale, true, 0.3)) > float(map_loss(under, scale, true, 0.3))
    with pytest.raises(ConfigError, match="training.quantile"):
        from hidd.map_train import load_map_config
        load_map_config("configs/maps/defocus_map.yaml", ["training.quantile=1"])


def test_a_pixel_weight_scales_its_radius_term_and_texture_weights_favour_the_textured_half():
    from hidd.map_train import texture_weights
    true, scale = torch.full((1, 4, 4), 3.0), torch.ones(1, 4, 4)
    over = torch.full_like(true, 4.0)
    nll = float(map_net.laplace_nll(torch.full_like(true, 3.0), scale, true))
    assert float(map_loss(over, scale, true, weight=torch.ones_like(true))) == pytest.approx(float(map_loss(over, scale,
                                                                                                        true)))
    double_half = torch.ones_like(true)
    double_half[..., :2] = 2.0
    assert float(map_loss(over, scale, true, weight=double_half)) == pytest.approx(1.5 + 1.0 + nll)
    y = torch.full((1, 3, 32, 32), 0.5)
    y[..., :16] += 0.3 * (torch.rand(1, 3, 32, 16, generator=torch.Generator().manual_seed(0)) - 0.5)
    assert texture_weights(y, 0.0) is None
    weights = texture_weights(y, 0.5)
    assert weights.shape == (1, 32, 32) and set(weights.unique().tolist()) == {0.5, 1.5}
    assert float(weights[..., :6].min()) == 1.5 and float(weights[..., 24:].max()) == 0.5
    from hidd.map_train import load_map_config
    with pytest.raises(ConfigError, match="training.texture_weight"):
        load_map_config("configs/maps/defocus_map.yaml", ["training.texture_weight=1"])


def test_a_run_starts_from_another_networks_weights_at_its_step(tmp_path, one_thread):
    from hidd.map_train import load_map_config, train_map
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, stem in enumerate(["a", "b"]):
        Image.fromarray((synthetic_photo(i, 48) * 255).astype(np.uint8)).save(photos / f"{stem}.png")
    sets = [f"data.photos={photos}", "data.held_out=[]", "data.crop=32", "training.batch_size=2",
            "training.latest_every=10", "training.eval_every=10", "training.eval_scenes=2", "model.features=[4,4,6,6]"]
    first = train_map(load_map_config("configs/maps/defocus_map.yaml", sets + ["training.steps=2"]), tmp_path / "a")
    start = load_network(first).state_dict()
    # a vanishing rate: the new run ends where its weights started, at the first run's step plus its own
    cfg = load_map_config("configs/maps/defocus_map.yaml", sets + ["training.steps=4", "training.lr=1e-12",
                                                                   "training.texture_weight=0.5"])
    second = train_map(cfg, tmp_path / "b", init=first)
    state = torch.load(second, weights_only=True)
    assert state["step"] == 4 and state["warm_start"] == {"init": str(first), "step": 2}
    assert all(torch.allclose(state["model"][k], start[k], atol=1e-8) for k in start)
    scratch = load_network(train_map(cfg, tmp_path / "c")).state_dict()
    assert not all(torch.allclose(scratch[k], start[k], atol=1e-3) for k in start)
    # its rolling checkpoint keeps the init, so a resumed run exports it too
    rolling = torch.load(tmp_path / "b" / "checkpoints" / "latest.pt", weights_only=True)
    assert rolling["warm_start"] == {"init": str(first), "step": 2}
    with pytest.raises(ValueError, match="is at step 2 already, training.steps is 2"):
        train_map(load_map_config("configs/maps/defocus_map.yaml", sets + ["training.steps=2"]), tmp_path / "d",
                  init=first)
    with pytest.raises(ValueError, match="--resume continues this run: give one"):
        train_map(cfg, tmp_path / "b", resume=True, init=first)
    wider = load_map_config("configs/maps/defocus_map.yaml", sets[:-1] + ["model.features=[4,4,6,8]",
                                                                          "training.steps=4"])
    with pytest.raises(CheckpointError, match=f"{first}: .*(missing|unexpected|vs)"):
        train_map(wider, tmp_path / "e", init=first)
    other = tmp_path / "other.pt"
    torch.save({"kind": "score_prior", "config": {}, "model": {}}, other)
    with pytest.raises(CheckpointError, match="other.pt: not a defocus map checkpoint"):
        train_map(cfg, tmp_path / "f", init=other)


def test_bench_defocus_map_scores_the_learned_map_and_sharp_photos_through_an_in_focus_camera(tmp_path, tiny_map,
                                                                                             one_thread):
    bench = load_script("bench_defocus_map")
    root = tmp_path / "bench"
    for folder in ("blurred", "radius_maps"):
        (root / folder).mkdir(parents=True)
    photo = sample_scene(random.Random(0), crop(3, 64), kinds=("subject",))
    Image.fromarray((photo.photo.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(root / "blurred" /
                                                                                                "subject_a.png")
    np.save(root / "radius_maps" / "subject_a.npy", photo.radius.numpy())
    bench.main(["--estimator", "learned", "--threads", "1", "--checkpoint", str(tiny_map), "--benchmark", str(root),
                "--output", str(tmp_path / "out")])
    (row,) = list(csv.DictReader(open(tmp_path / "out" / "map.csv")))
    assert row["photo"] == "subject_a" and float(row["mae"]) >= 0
    # the textured and the flat half together are the whole photo: their errors average to the photo's
    assert (float(row["mae_textured"]) + float(row["mae_flat"])) / 2 == pytest.approx(float(row["mae"]), rel=1e-6)
    sharp = tmp_path / "sharp"
    sharp.mkdir()
    Image.fromarray((synthetic_photo(4, 96) * 255).round().astype(np.uint8)).save(sharp / "p.png")
    bench.main(["--estimator", "learned", "--sharp", str(sharp), "--sizes", "64", "--in-focus-camera",
                "--output", str(tmp_path / "s")])
    (row,) = list(csv.DictReader(open(tmp_path / "s" / "map.csv")))
    assert row["photo"] == "p@64" and 0 <= float(row["pixels_read_defocused"]) <= 1
    with pytest.raises(ValueError, match="no photo named"):
        bench.main(["--sharp", str(sharp), "--held-out", "--output", str(tmp_path / "h")])


def test_a_killed_run_resumes_to_the_same_weights(tmp_path, one_thread, monkeypatch):
    from hidd.map_train import load_map_config, train_map
    from hidd.checkpoint import KILL_AT_STEP_ENV
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, stem in enumerate(["a", "b"]):
        Image.fromarray((synthetic_photo(i, 48) * 255).astype(np.uint8)).save(photos / f"{stem}.png")
    cfg = load_map_config("configs/maps/defocus_map.yaml", [
        f"data.photos={photos}", "data.held_out=[]", "data.crop=32", "training.batch_size=2", "training.steps=4",
        "training.latest_every=10", "training.eval_every=10", "training.eval_scenes=2", "model.features=[4,4,6,6]"])
    straight = load_network(train_map(cfg, tmp_path / "straight")).state_dict()
    monkeypatch.setenv(KILL_AT_STEP_ENV, "2")
    with pytest.raises(KeyboardInterrupt):
        train_map(cfg, tmp_path / "killed")
    monkeypatch.delenv(KILL_AT_STEP_ENV)
    at_kill = torch.load(tmp_path / "killed" / "checkpoints" / "latest.pt", weights_only=True)
    assert at_kill["step"] == 2 and not all(torch.equal(at_kill["model"][k], straight[k]) for k in straight)
    resumed = load_network(train_map(cfg, tmp_path / "killed", resume=True)).state_dict()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    # rendering workers change the speed, not the batches: two worker processes, killed and resumed, the same weights
    two = replace(cfg, training=replace(cfg.training, workers=2))
    monkeypatch.setenv(KILL_AT_STEP_ENV, "3")
    with pytest.raises(KeyboardInterrupt):
        train_map(two, tmp_path / "workers")
    monkeypatch.delenv(KILL_AT_STEP_ENV)
    workers = load_network(train_map(two, tmp_path / "workers", resume=True)).state_dict()
    assert all(torch.equal(straight[k], workers[k]) for k in straight)


def test_training_photos_named_relative_to_the_repository_are_found_from_any_folder(tmp_path, monkeypatch):
    import hidd.config
    from hidd.map_train import MapDataConfig, training_photos

    repository = tmp_path / "repo"
    (repository / "data" / "photos").mkdir(parents=True)
    Image.fromarray((synthetic_photo(0, 32) * 255).astype(np.uint8)).save(repository / "data" / "photos" / "a.png")
    monkeypatch.setattr(hidd.config, "REPO_ROOT", repository)
    monkeypatch.chdir(tmp_path)  # another folder: data/photos is not here
    found = training_photos(MapDataConfig(photos="data/photos", held_out=[], crop=32))
    assert [photo.shape for photo in found] == [(3, 32, 32)]
    with pytest.raises(ValueError, match="data/nowhere: no PNG photos"):
        training_photos(MapDataConfig(photos="data/nowhere", held_out=[]))


def test_sampler_map_network_picks_the_learned_maps_checkpoint_and_only_with_the_learned_map(tmp_path, tiny_map):
    from hidd.blind.map_estimators import learned_network
    from hidd.config import SamplerConfig
    from hidd.sampling.settings import check_sampler

    torch.manual_seed(5)
    other = tmp_path / "other.pt"
    save_network(MapNet(TINY), other, {"model": {"features": list(TINY)}})
    y = crop(6, 48)[None].double()
    shipped = _operator(y, "learned").radius_field
    assert torch.equal(_operator(y, "learned", map_network=str(tiny_map)).radius_field, shipped)
    mine = _operator(y, "learned", map_network=str(other)).radius_field
    assert not torch.equal(mine, shipped)
    assert learned_network(SamplerConfig(radius_map="learned")) == map_net.CHECKPOINT
    assert learned_network(SamplerConfig(radius_map="learned", map_network=str(other))) == other
    assert learned_network(SamplerConfig(radius_map="edges")) is None
    for value in ("edges", False):
        with pytest.raises(ConfigError, match="sampler.map_network .* is the learned map's network"):
            check_sampler(SamplerConfig(radius_map=value, map_network=str(other)))


def test_reconstruct_checks_the_map_network_first_and_a_resume_needs_the_same_one(tmp_path, tiny_map, capsys):
    from conftest import make_tiny_checkpoint
    from hidd.cli.reconstruct import main as reconstruct_main
    from hidd.imageio import write_image

    prior, source = make_tiny_checkpoint(tmp_path / "tiny.pt"), tmp_path / "in"
    source.mkdir()
    write_image(source / "p.png", synthetic_photo(0, 48))

    def run(out, network, *extra):
        with pytest.raises(SystemExit) as code:
            reconstruct_main(["--input", str(source), "--output", str(out), "--checkpoint", str(prior),
                              "--preset", "depth", "--set", "sampler.radius_map=learned", "--set",
                              f"sampler.map_network={network}", "--set", "sampler.num_steps=2", *extra])
            raise SystemExit(0)
        return code.value.code

    assert run(tmp_path / "none", tmp_path / "gone.pt") == 2
    assert "gone.pt: defocus map checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    network = tmp_path / "mine.pt"
    network.write_bytes(tiny_map.read_bytes())
    assert run(tmp_path / "out", network) == 0
    import yaml
    recorded = yaml.safe_load(open(tmp_path / "out" / "run.yaml"))
    assert recorded["map_network"]["path"] == str(network.resolve())
    assert run(tmp_path / "out", network, "--skip-existing") == 0  # the same network: the run is done already
    torch.manual_seed(9)
    save_network(MapNet(TINY), network, {"model": {"features": list(TINY)}})  # other weights under the same name
    capsys.readouterr()
    assert run(tmp_path / "out", network, "--skip-existing") == 2
    assert "map_network" in capsys.readouterr().err
