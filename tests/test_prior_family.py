"""The prior family (configs/prior_{s,m,l}.yaml), warm starts from a checkpoint, and the denoising judge."""
import json
import math

import numpy as np
import pytest
import torch
import yaml

from conftest import load_script
from hidd import checkpoint
from hidd.config import load_config, resolve_config_path
from hidd.denoise_eval import denoise_psnr, noisy_psnr, public_photos
from hidd.models import build_model, count_parameters
from hidd.prior import DEFAULT_CHECKPOINT
from hidd.settings import check_values
from hidd.train import train

REFERENCE_NCSNPP = 65_574_421  # the score-SDE 256² VE NCSN++ (REFERENCE.md)


def family(size: str):
    cfg = load_config(resolve_config_path(f"prior_{size}"))
    check_values(cfg)
    return cfg


def parameters(cfg) -> int:
    with torch.device("meta"):  # counts without allocating 65 M weights
        return count_parameters(build_model(cfg))


def test_family_sizes_and_the_reference_count():
    s, m, large = (parameters(family(size)) for size in "sml")
    assert s == 6_877_292  # the shipped checkpoint's network
    assert 20e6 <= m <= 30e6
    assert large == REFERENCE_NCSNPP
    recipes = [(c.data, c.sde, c.training) for c in map(family, "sml")]
    assert recipes[0] == recipes[1] == recipes[2]  # one corpus and one recipe: only the network differs


def test_the_shipped_weights_load_into_size_s():
    weights = checkpoint.load(DEFAULT_CHECKPOINT)["ema"]["weights"]
    checkpoint.load_weights_strict(build_model(family("s")), weights, str(DEFAULT_CHECKPOINT))
    with pytest.raises(checkpoint.CheckpointError, match="shape mismatch"):
        with torch.device("meta"):
            checkpoint.load_weights_strict(build_model(family("m")), weights, str(DEFAULT_CHECKPOINT))


def tiny(root, *extra):
    return load_config(resolve_config_path("tiny"), [f"data.roots=[{root}]", "training.eval_every=0", *extra])


def test_a_warm_start_continues_from_exported_weights(sharp_folder, tmp_path):
    first = train(tiny(sharp_folder, "training.steps=3"), tmp_path / "a", device="cpu").latest
    export = load_script("export_checkpoint")
    export.main([str(first), str(tmp_path / "a.pt"), "--half"])
    exported = checkpoint.load(tmp_path / "a.pt")

    # A learning rate of ~0 leaves the weights where the warm start put them: the exported EMA weights.
    result = train(tiny(sharp_folder, "training.steps=5", "training.lr=1e-30"), tmp_path / "b", device="cpu",
                   init=tmp_path / "a.pt")
    state = checkpoint.load(result.latest)
    assert state["step"] == 5 and state["warm_start"] == {"init": str(tmp_path / "a.pt"), "step": 3}
    for key, value in exported["ema"]["weights"].items():
        assert torch.allclose(state["model"][key], value.float()), key
    assert state["ema"]["num_updates"] == exported["ema"]["num_updates"] + 2

    with pytest.raises(checkpoint.CheckpointError, match="shape mismatch"):
        train(tiny(sharp_folder, "training.steps=5", "model.nf=32"), tmp_path / "c", device="cpu",
              init=tmp_path / "a.pt")
    with pytest.raises(ValueError, match="training.steps"):
        train(tiny(sharp_folder, "training.steps=3"), tmp_path / "d", device="cpu", init=tmp_path / "a.pt")
    with pytest.raises(checkpoint.CheckpointError, match="sde.sigma_max 50.0 there, 80.0 here"):
        train(tiny(sharp_folder, "training.steps=5", "sde.sigma_max=80"), tmp_path / "e", device="cpu",
              init=tmp_path / "a.pt")  # a prior learns the scores of one SDE


def test_public_photos_are_the_test_set_at_the_asked_size():
    images = public_photos(64)
    assert images.shape == (5, 3, 64, 64) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1 and images.std() > 0.1
    gray = public_photos(32, channels=1, names=("camera",))
    assert gray.shape == (1, 1, 32, 32)


class PointMass(torch.nn.Module):
    """The exact score of photos that are always `image`: s(x, σ) = (image − x) / σ²."""

    def __init__(self, image):
        super().__init__()
        self.image = image

    def forward(self, x, sigma):
        return (self.image - x) / sigma[:, None, None, None] ** 2


class Zero(torch.nn.Module):
    def forward(self, x, sigma):
        return torch.zeros_like(x)


def test_denoise_psnr_reads_the_tweedie_denoiser():
    images = public_photos(32)
    sigmas = (0.02, 0.1)
    exact = denoise_psnr(PointMass(images[:1]), images[:1], sigmas)
    assert (exact > 100).all()  # the exact posterior mean of a point mass is the photo (up to rounding)
    none = denoise_psnr(Zero(), images, sigmas, batch=2)  # a zero score returns the noisy photo (clamped)
    assert none.shape == (5, 2)
    for j, sigma in enumerate(sigmas):
        assert noisy_psnr(sigma) - 0.1 < none[:, j].min() and none[:, j].max() < noisy_psnr(sigma) + 1.5
    # one noise draw per photo for every σ and model: the same call gives the same table
    assert np.array_equal(none, denoise_psnr(Zero(), images, sigmas, batch=5))
    assert math.isclose(noisy_psnr(0.1), 20.0)


def test_eval_denoise_prints_and_writes_the_table(tiny_checkpoint, tmp_path, capsys):
    script = load_script("eval_denoise")
    script.main([f"tiny={tiny_checkpoint}", "--size", "32", "--sigmas", "0.05", "0.2", "--device", "cpu",
                 "--output", str(tmp_path / "out"), "--per-photo"])
    text = capsys.readouterr().out
    assert "| noisy input | – | – | 26.02 | 13.98 |" in text and "| tiny |" in text and "| rocket |" in text
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"per_photo.csv", "summary.csv", "table.md", "run.yaml"}
    with pytest.raises(SystemExit):
        script.parse_args([str(tiny_checkpoint), "--sigmas", "0"])


def small_baseline(method, root, *extra):
    from hidd.baselines.config import load_baseline_config

    small = {"dncnn": ["model.features=8", "model.depth=4"],
             "cyclegan": ["model.features=4", "model.depth=1", "model.disc_features=4"]}[method]
    return load_baseline_config(method, [*small, f"data.roots=[{root}]", "data.image_size=32", "data.val_images=1",
                                         "data.num_workers=0", "training.batch_size=2", "training.eval_pairs=2",
                                         "training.eval_every=0", *extra])


def test_baseline_pairs_made_in_workers_are_the_training_process_pairs(sharp_folder):
    from torch.utils.data import DataLoader

    from hidd.baselines.train import StepItems, StepPairs
    from hidd.data import train_val_datasets
    from hidd.data_stream import ResumableSampler

    cfg = small_baseline("cyclegan", sharp_folder)
    train_set, _ = train_val_datasets(cfg.data, 3)
    pairs = StepPairs(train_set, cfg, unpaired=True)

    def first_steps(workers, start):
        items = StepItems(ResumableSampler(train_set, rank=0, world_size=1, seed=0, start=start * 4), 4, start)
        loader = iter(DataLoader(pairs, batch_size=None, sampler=items, num_workers=workers))
        return [next(loader) for _ in range(3)]

    in_process, in_workers, later = first_steps(0, 0), first_steps(2, 0), first_steps(0, 1)
    for a, b in zip(in_process, in_workers):
        assert a[0].shape == (2, 3, 32, 32) and a[1].shape == (2, 3, 32, 32) and a[2].shape == (2,)
        assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b))
    assert all(torch.equal(x, y) for x, y in zip(in_process[1], later[0]))  # step 1 is step 1 from any start
    assert not torch.equal(in_process[0][0], in_process[0][1])  # unpaired: the blurred side is other crops


def test_a_baseline_warm_start_takes_an_exported_restorer(sharp_folder, tmp_path):
    from hidd.baselines.restore import export_state
    from hidd.baselines.train import train_baseline

    latest = train_baseline(small_baseline("cyclegan", sharp_folder, "training.steps=2"), tmp_path / "a",
                            device="cpu")
    checkpoint.save_atomic(export_state(checkpoint.load(latest)), tmp_path / "a.pt")
    exported = checkpoint.load(tmp_path / "a.pt")["model"]
    cfg = small_baseline("cyclegan", sharp_folder, "training.steps=3", "training.lr=1e-30")
    state = checkpoint.load(train_baseline(cfg, tmp_path / "b", device="cpu", init=tmp_path / "a.pt"))
    assert state["step"] == 3 and state["warm_start"]["step"] == 2
    for key, value in exported.items():  # the restorer is the exported one (a rate of ~0 keeps it there)
        assert torch.allclose(state["model"][f"to_sharp.{key}"], value), key
    with pytest.raises(checkpoint.CheckpointError, match="not a dncnn checkpoint"):
        train_baseline(small_baseline("dncnn", sharp_folder, "training.steps=3"), tmp_path / "c", device="cpu",
                       init=tmp_path / "a.pt")


def fake_opencv_package(root):
    """opencv-doc's layout with its 18 training photos as small synthetic pictures, and a copyright file."""
    from conftest import synthetic_photo
    from hidd.imageio import write_image

    corpus = load_script("prepare_corpus")
    folder = root / "ocv" / corpus.OPENCV_DIR
    for i, name in enumerate(corpus.OPENCV_PHOTOS):
        photo = synthetic_photo(i, size=300)
        if name.endswith(".jpg"):
            import skimage.io
            folder.mkdir(parents=True, exist_ok=True)
            skimage.io.imsave(folder / name, (photo * 255).astype(np.uint8))
        else:
            write_image(folder / name, photo)
    doc = root / "ocv/usr/share/doc/opencv-doc"
    (doc / "copyright").write_text("Files: *\nCopyright: someone\nLicense: Apache-2.0\n")
    (folder / "text_defocus.jpg").write_bytes(b"not packed")
    return corpus


def test_prepare_corpus_packs_the_sources_and_builds_every_scale_from_the_pack(tmp_path):
    corpus = fake_opencv_package(tmp_path / "debs")
    corpus.main(["--debs", str(tmp_path / "debs"), "--sources", "ocv", "--pack", str(tmp_path / "pack")])
    packed = sorted(p.name for p in (tmp_path / "pack").rglob("*") if p.is_file())
    assert packed == sorted([*corpus.OPENCV_PHOTOS, "copyright"])  # the training photos alone
    corpus.main(["--debs", str(tmp_path / "pack"), "--sources", "ocv", "--out", str(tmp_path / "corpus"),
                 "--tile", "64", "--min-short-side", "128"])
    settings = yaml.safe_load((tmp_path / "corpus/settings.yaml").read_text())
    counts = settings["counts"]["total"]
    assert counts["photos"] == 18 and 0 < counts["tiles_kept"] <= counts["tiles_cut"]
    manifest = json.loads((tmp_path / "corpus/manifest.json").read_text())["photos"]
    assert all([s["factor"] for s in photo["scales"]] == [1, 1.5, 2] for photo in manifest)  # 300 px: 300/3 < 128
    tiles = list((tmp_path / "corpus/tiles").glob("*.png"))
    assert len(tiles) == counts["tiles_kept"] and any("_f1p5_" in t.name for t in tiles)
    assert all(photo["licence"].startswith("Apache-2.0") for photo in manifest)


def test_scales_and_per_photo_licences():
    corpus = load_script("prepare_corpus")
    assert corpus.scales((1600, 2560, 3), [1, 1.5, 2, 3, 4], 1024, 256) == [3, 4]
    assert corpus.scales((512, 512, 3), [1, 1.5, 2, 3, 4], 1024, 256) == [1, 1.5, 2]
    assert corpus.scales((200, 300, 3), [1, 2], 1024, 256) == []


def test_a_photo_s_own_copyright_stanza_is_found(tmp_path):
    corpus = load_script("prepare_corpus")
    doc = tmp_path / "usr/share/doc/mate-backgrounds"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Files: *\nCopyright: The MATE team\nLicense: GPL-2+\n\n"
        "Files: nature/Aqua.jpg\n       nature/Wood.jpg\nCopyright: 2008, A Person <a@b.c>\n"
        "           2009, \"another\" <d@e.f>\nLicense: CC-BY-SA-4.0\n")
    assert corpus.file_stanza(tmp_path, "mate-backgrounds", "nature/Wood.jpg") == \
        ("CC-BY-SA-4.0", "2008, A Person; 2009, another")
    assert corpus.file_stanza(tmp_path, "mate-backgrounds", "nature/Dune.jpg") == ("unknown", "not stated")


def test_a_warm_started_baseline_ramps_its_rate_up_again():
    from hidd.baselines.config import BaselineTrainingConfig
    from hidd.baselines.train import learning_rate

    tc = BaselineTrainingConfig(steps=100, lr=1.0, lr_decay_from=0.5, warmup=10)
    assert learning_rate(tc, 20) == 1.0 and learning_rate(tc, 75) == 0.5  # a fresh run: no ramp
    assert learning_rate(tc, 20, warm_from=20) == pytest.approx(0.1)
    assert learning_rate(tc, 29, warm_from=20) == 1.0 and learning_rate(tc, 75, warm_from=20) == 0.5


def test_the_gpu_job_parses_and_names_what_exists():
    import re
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts/gpu/train_prior.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    for name in re.findall(r"scripts/(\w+)\.py", text):  # every script it runs is there
        assert (script.parent.parent / f"{name}.py").is_file(), name
    sizes = re.search(r"PRIORS=\$\{PRIORS:-(\w+)\}", text).group(1).split()
    assert all((script.parent.parent.parent / f"configs/prior_{size}.yaml").is_file() for size in sizes)
