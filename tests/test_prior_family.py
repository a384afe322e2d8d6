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
