import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hidd import checkpoint
from hidd.config import apply_overrides, load_config, resolve_config_path
from hidd.losses import score_matching_loss
from hidd.models import build_model
from hidd.sde import build_sde
from hidd.checkpoint import KILL_AT_STEP_ENV, RunExistsError
from hidd.train import train

REPO = Path(__file__).resolve().parent.parent


def tiny_config(data_root, *extra):
    return load_config(resolve_config_path("tiny"), [f"data.roots=[{data_root}]", *extra])


def test_loss_falls_when_overfitting_one_image(sharp_folder):
    cfg = tiny_config(sharp_folder)
    torch.manual_seed(0)
    model, sde = build_model(cfg), build_sde(cfg.sde)
    image = torch.rand(1, 3, 32, 32)
    batch = image.expand(8, -1, -1, -1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    fixed = torch.Generator().manual_seed(1)  # the same noise draws before and after: a fair comparison

    def eval_loss():
        with torch.no_grad():
            return score_matching_loss(model, sde, batch, reduction="mean", generator=fixed.manual_seed(1)).item()

    before = eval_loss()
    for _ in range(100):
        loss = score_matching_loss(model, sde, batch, reduction="mean")
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eval_loss() < 0.7 * before


def _run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hidd.cli.train", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=REPO)


def test_resume_after_sigkill_is_bit_identical(sharp_folder, tmp_path):
    common = ["--config", "tiny", "--set", f"data.roots=[{sharp_folder}]", "--set", "training.steps=10",
              "--set", "training.latest_every=5", "--set", "training.eval_every=0", "--device", "cpu"]
    straight = _run_cli("--workdir", str(tmp_path / "straight"), *common)
    assert straight.returncode == 0, straight.stderr
    killed = _run_cli("--workdir", str(tmp_path / "killed"), *common, env={KILL_AT_STEP_ENV: "5"})
    assert killed.returncode == -9  # really SIGKILLed, right after the step-5 checkpoint
    assert checkpoint.load(tmp_path / "killed/checkpoints/latest.pt")["step"] == 5
    resumed = _run_cli("--workdir", str(tmp_path / "killed"), *common, "--resume")
    assert resumed.returncode == 0, resumed.stderr

    a = checkpoint.load(tmp_path / "straight/checkpoints/latest.pt")
    b = checkpoint.load(tmp_path / "killed/checkpoints/latest.pt")
    assert a["step"] == b["step"] == 10
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema"]["weights"]:
        assert torch.equal(a["ema"]["weights"][key], b["ema"]["weights"][key]), key


def test_strict_load_names_the_mismatch(sharp_folder, tmp_path):
    cfg = tiny_config(sharp_folder, "training.steps=2", "training.eval_every=0")
    latest = train(cfg, tmp_path / "run", device="cpu").latest
    state = checkpoint.load(latest)
    wider = build_model(apply_overrides(cfg, ["model.nf=32"]))
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.load_weights_strict(wider, state["model"], str(latest))
    message = str(e.value)
    assert "\n" not in message and "latest.pt" in message and "shape mismatch" in message
    deeper = build_model(apply_overrides(cfg, ["model.num_res_blocks=2"]))
    with pytest.raises(checkpoint.CheckpointError, match="missing keys: "):
        checkpoint.load_weights_strict(deeper, state["model"], str(latest))


def test_workdir_guard(sharp_folder, tmp_path):
    cfg = tiny_config(sharp_folder, "training.steps=1", "training.eval_every=0")
    with pytest.raises(RunExistsError, match="nothing to resume"):
        train(cfg, tmp_path / "run", resume=True, device="cpu")
    train(cfg, tmp_path / "run", device="cpu")
    with pytest.raises(RunExistsError, match="--resume"):
        train(cfg, tmp_path / "run", device="cpu")


def test_cli_trains_logs_checkpoints_and_resumes(sharp_folder, tmp_path):
    work = tmp_path / "x"
    args = ["--config", "tiny", "--workdir", str(work), "--set", f"data.roots=[{sharp_folder}]",
            "--set", "training.steps=20", "--set", "training.checkpoint_every=10", "--set", "training.eval_every=10",
            "--set", "training.sample_every=10", "--set", "training.sample_steps=5"]
    first = _run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert (work / "checkpoints/ckpt_0000010.pt").is_file() and (work / "checkpoints/ckpt_0000020.pt").is_file()
    assert list((work / "tb").glob("events.out.tfevents.*"))
    assert "steps: 20" in (work / "config.yaml").read_text()
    again = _run_cli(*args)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    resumed = _run_cli("--config", "tiny", "--workdir", str(work), "--set", f"data.roots=[{sharp_folder}]",
                       "--resume", "--set", "training.steps=30")
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint.load(work / "checkpoints/latest.pt")["step"] == 30

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(work / "tb")).Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "train/grad_norm", "train/images_per_sec"} <= set(tags)
    assert any(t.startswith("eval/denoise_psnr_sigma_") for t in tags)
    test_tags = [t for t in tags if t.startswith("test/denoise_psnr_sigma_")]  # the public test photos
    assert len(test_tags) == len(load_config(resolve_config_path("tiny")).training.eval_sigmas)
    assert all(0 < value.value < 60 for value in events.Scalars(test_tags[0]))
    assert "samples" in events.Tags()["images"]


def test_ddp_two_cpu_ranks_agree(sharp_folder, tmp_path):
    worker = REPO / "tests" / "ddp_worker.py"
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
         str(worker), str(sharp_folder), str(out)],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    assert rank0["step"] == rank1["step"] == 4
    for key in rank0["weights"]:
        assert torch.equal(rank0["weights"][key], rank1["weights"][key]), key
    initial = build_model(tiny_config(sharp_folder)).state_dict()
    assert any(not torch.equal(initial[k], rank0["weights"][k]) for k in initial)  # it did train
