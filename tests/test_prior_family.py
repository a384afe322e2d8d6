"""The prior family (configs/prior_{s,m,l}.yaml), warm starts from a checkpoint, and the denoising judge."""
import math

import numpy as np
import pytest
import torch

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
