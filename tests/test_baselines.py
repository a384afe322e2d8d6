"""The paper's comparison networks (DnCNN, FFDNet, CycleGAN): shapes, one training step, pairs, training
runs that resume exactly, checkpoints (shipped ones load strictly), and hidd-reconstruct --method."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hidd import checkpoint
from hidd.baselines.config import load_baseline_config
from hidd.baselines.losses import objective_for
from hidd.baselines.networks import NETWORKS, build_network
from hidd.baselines.pairs import synthesize
from hidd.baselines.restore import BaselineDeblurrer, default_checkpoint, export_state, load_baseline
from hidd.baselines.train import train_baseline
from hidd.config import ConfigError
from hidd.imageio import write_image
from hidd.prior import load_prior
from hidd.checkpoint import KILL_AT_STEP_ENV

REPO = Path(__file__).resolve().parent.parent
METHODS = ["dncnn", "ffdnet", "cyclegan"]
SMALL = {"dncnn": ["model.features=8", "model.depth=4"], "ffdnet": ["model.features=8", "model.depth=4"],
         "cyclegan": ["model.features=4", "model.depth=1", "model.disc_features=4"]}


def small_config(method, data_root=None, *extra):
    roots = [f"data.roots=[{data_root}]", "data.image_size=32", "data.num_workers=0", "data.val_images=1"] \
        if data_root else []
    return load_baseline_config(method, [*SMALL[method], *roots, "training.batch_size=2", *extra])


def test_the_three_methods_are_registered():
    assert NETWORKS.names() == ["cyclegan", "dncnn", "ffdnet"]


@pytest.mark.parametrize("method", METHODS)
def test_forward_keeps_the_shape(method):
    torch.manual_seed(0)
    network = build_network(small_config(method).model).eval()
    y = torch.rand(2, 3, 32, 48)
    out = network.restore(y, torch.tensor([0.01, 0.02]))
    assert out.shape == y.shape and torch.isfinite(out).all()


def test_shipped_architectures_have_the_papers_size():
    dncnn = build_network(load_baseline_config("dncnn").model)
    convs = [m for m in dncnn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 17 and all(c.out_channels == 64 for c in convs[:-1])  # 17 layers of 64 channels
    ffdnet = build_network(load_baseline_config("ffdnet").model)
    first = next(m for m in ffdnet.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 4 * 3 + 1  # pixel-unshuffled colour + the noise-level map


@pytest.mark.parametrize("method", METHODS)
def test_one_training_step_moves_every_trained_part(method):
    torch.manual_seed(0)
    cfg = small_config(method)
    network = build_network(cfg.model)
    objective = objective_for(network, cfg.training)
    before = {k: v.clone() for k, v in network.state_dict().items() if v.is_floating_point()}
    sharp = torch.rand(2, 3, 32, 32)
    blurred, level = synthesize(sharp, cfg.degradation, seed=1)
    losses = objective.step(sharp, blurred, level)
    assert all(np.isfinite(v) for v in losses.values())
    changed = {k.split(".")[0] for k, v in network.state_dict().items() if k in before and not torch.equal(v, before[k])}
    expected = {"to_sharp", "to_blurred", "judge_sharp", "judge_blurred"} if method == "cyclegan" else {"body"}
    assert changed == expected


def test_paired_training_learns_to_deblur_a_fixed_pair():
    torch.manual_seed(0)
    cfg = small_config("dncnn", None, "training.lr=3e-3")
    network = build_network(cfg.model)
    objective = objective_for(network, cfg.training)
    sharp = torch.rand(2, 3, 32, 32)
    blurred, level = synthesize(sharp, cfg.degradation, seed=2)
    first = objective.step(sharp, blurred, level)["loss"]
    for _ in range(60):
        last = objective.step(sharp, blurred, level)["loss"]
    assert last < 0.5 * first


def test_pairs_are_a_function_of_the_seed_and_carry_their_noise_level():
    cfg = load_baseline_config("dncnn", ["degradation.model=srgb-disk", "degradation.noise_min=0.01",
                                         "degradation.noise_max=0.01"]).degradation
    sharp = torch.rand(3, 3, 48, 48)
    a, level = synthesize(sharp, cfg, seed=5)
    b, _ = synthesize(sharp, cfg, seed=5)
    c, _ = synthesize(sharp, cfg, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # white noise 0.01 plus 8-bit rounding (0.0011), clipped a little at 0 and 1
    assert torch.allclose(level, torch.full((3,), 0.01), rtol=0.15)
    with pytest.raises(ValueError, match="unknown model 'gopro'"):
        synthesize(sharp, load_baseline_config("dncnn", ["degradation.model=gopro"]).degradation, seed=0)


def test_camera_pairs_mix_linear_disks_and_lenses():
    cfg = load_baseline_config("dncnn").degradation
    sharp = torch.rand(8, 3, 32, 32)
    blurred, level = synthesize(sharp, cfg, seed=0)
    assert blurred.shape == sharp.shape and (level > 0).all()
    assert (blurred - sharp).abs().mean() > 0.05  # defocused (radius ≥ 1.5 px on noise texture)


def test_config_refuses_typos():
    with pytest.raises(ConfigError, match="did you mean 'depth'"):
        load_baseline_config("dncnn", ["model.dpth=3"])


def _run(module, *args, env=None):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("method", ["ffdnet", "cyclegan"])
def test_training_resumes_after_a_kill_bit_identically(method, sharp_folder, tmp_path):
    common = ["--config", method, "--device", "cpu", *[a for s in SMALL[method] for a in ("--set", s)]]
    for s in (f"data.roots=[{sharp_folder}]", "data.image_size=32", "data.num_workers=0", "data.val_images=1",
              "training.batch_size=2", "training.steps=6", "training.latest_every=3", "training.eval_every=3",
              "training.eval_pairs=2"):
        common += ["--set", s]
    straight = _run("hidd.cli.train_baseline", "--workdir", str(tmp_path / "straight"), *common)
    assert straight.returncode == 0, straight.stderr
    killed = _run("hidd.cli.train_baseline", "--workdir", str(tmp_path / "killed"), *common,
                  env={KILL_AT_STEP_ENV: "3"})
    assert killed.returncode == -9
    resumed = _run("hidd.cli.train_baseline", "--workdir", str(tmp_path / "killed"), "--resume", "--device", "cpu")
    assert resumed.returncode == 0, resumed.stderr
    a = checkpoint.load(tmp_path / "straight/checkpoints/latest.pt")
    b = checkpoint.load(tmp_path / "killed/checkpoints/latest.pt")
    assert a["step"] == b["step"] == 6
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert (tmp_path / "straight/config.yaml").is_file() and any((tmp_path / "straight/tb").iterdir())


def test_export_keeps_the_restorer_and_loads_strictly(sharp_folder, tmp_path):
    cfg = small_config("cyclegan", sharp_folder, "training.steps=1", "training.eval_pairs=2")
    latest = train_baseline(cfg, tmp_path / "run", device="cpu")
    shipped = tmp_path / "cyclegan.pt"
    checkpoint.save_atomic(export_state(checkpoint.load(latest)), shipped)
    assert set(checkpoint.load(shipped)["model"]) == set(build_network(cfg.model).to_sharp.state_dict())
    for path in (latest, shipped):
        baseline = load_baseline("cyclegan", path)
        out = BaselineDeblurrer(baseline)(torch.rand(1, 3, 30, 34))  # padded to the network's multiple, cropped
        assert out.images.shape == (1, 3, 30, 34) and out.nfe == 1
    with pytest.raises(checkpoint.CheckpointError, match="a cyclegan checkpoint, not dncnn"):
        load_baseline("dncnn", shipped)
    with pytest.raises(checkpoint.CheckpointError, match="run it with --method cyclegan"):
        load_prior(shipped)
    with pytest.raises(checkpoint.CheckpointError, match="score-prior checkpoint"):
        load_baseline("dncnn", REPO / "checkpoints" / "hidd-default.pt")


@pytest.mark.parametrize("method", METHODS)
def test_shipped_checkpoint_loads_strictly_is_small_and_restores(method):
    path = default_checkpoint(method)
    assert path.stat().st_size <= 5 * 2**20
    baseline = load_baseline(method)  # strict: every weight of the restoring network, nothing else
    y = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    out = BaselineDeblurrer(baseline)(y)
    assert out.images.shape == y.shape and out.problems == [None]
    assert (REPO / "checkpoints" / f"{method}.md").is_file()  # its model card


def test_reconstruct_runs_a_baseline_on_a_folder(sharp_folder, tmp_path):
    blurred = tmp_path / "blurred"
    for i, path in enumerate(sorted(sharp_folder.iterdir())[:2]):
        write_image(blurred / path.name, np.clip(np.random.default_rng(i).normal(0.5, 0.1, (48, 48, 3)), 0, 1))
    cfg = small_config("ffdnet", sharp_folder, "training.steps=1", "training.eval_pairs=2")
    latest = train_baseline(cfg, tmp_path / "run", device="cpu")
    out = tmp_path / "out"
    done = _run("hidd.cli.reconstruct", "--input", str(blurred), "--target", str(sharp_folder), "--output", str(out),
                "--method", "ffdnet", "--checkpoint", str(latest))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["img0.png", "img1.png"]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "psnr" in rows[0]
    assert "name: ffdnet" in (out / "config.yaml").read_text()
    refused = _run("hidd.cli.reconstruct", "--input", str(blurred), "--output", str(tmp_path / "o2"),
                   "--method", "ffdnet", "--checkpoint", str(latest), "--preset", "paper")
    assert refused.returncode == 2 and "--preset configures the diffusion sampler" in refused.stderr


def test_scripts_reconstruct_is_the_cli():
    help_text = subprocess.run([sys.executable, "scripts/reconstruct.py", "--help"], capture_output=True, text=True,
                               cwd=REPO)
    assert help_text.returncode == 0 and "--method" in help_text.stdout


def test_reconstruct_offers_every_registered_method():
    from hidd.cli.reconstruct import parser

    method = next(a for a in parser()._actions if a.dest == "method")
    assert sorted(method.choices) == sorted(["hidd", *NETWORKS.names()])
