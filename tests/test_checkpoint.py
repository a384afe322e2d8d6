"""Checkpoints load weights-only: a malicious pickle runs nothing, and every refusal is one line."""
import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from hidd import checkpoint
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.cli.train import main as train_main
from hidd.config import load_config, resolve_config_path
from hidd.train import train

REPO = Path(__file__).resolve().parent.parent


class Payload:
    """Unpickling this writes a file: what an attacker's checkpoint would do, harmlessly."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def evil_checkpoint(path: Path, marker: Path, *, base: dict | None = None) -> Path:
    """A checkpoint that is a real hidd checkpoint plus a payload that runs on a full unpickle."""
    state = dict(base or {"config": {}, "ema": {"num_updates": 0, "weights": {}}})
    state["payload"] = Payload(marker)
    torch.save(state, path)
    # The payload is real: an unrestricted load runs it. (Otherwise the tests below could not fail.)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned"
    marker.unlink()
    return path


def test_malicious_checkpoint_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = evil_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.load(path)
    assert not marker.exists()
    message = str(e.value)
    assert "\n" not in message and "evil.pt" in message and "refused" in message and "exec" in message


def test_malicious_checkpoint_through_hidd_reconstruct(tiny_checkpoint, tmp_path, capsys):
    marker = tmp_path / "pwned"
    base = torch.load(tiny_checkpoint, weights_only=True)
    path = evil_checkpoint(tmp_path / "evil.pt", marker, base=base)
    (tmp_path / "in").mkdir()
    with pytest.raises(SystemExit) as e:
        reconstruct_main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                          "--checkpoint", str(path)])
    assert e.value.code == 2 and not marker.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused" in err and "Traceback" not in err


def test_malicious_latest_checkpoint_through_hidd_train_resume(sharp_folder, tmp_path, capsys):
    work = tmp_path / "run"
    args = ["--config", "tiny", "--workdir", str(work), "--set", f"data.roots=[{sharp_folder}]",
            "--set", "training.steps=1", "--set", "training.eval_every=0"]
    train_main(args)
    latest = work / "checkpoints" / "latest.pt"
    marker = tmp_path / "pwned"
    good = torch.load(latest, weights_only=True)
    latest.unlink()
    evil_checkpoint(latest, marker, base=good)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        train_main([*args, "--resume"])
    assert e.value.code == 2 and not marker.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "latest.pt" in err and "refused" in err


@pytest.mark.parametrize("state, problem", [
    ({"config": "tiny", "model": {}}, "its config is a str"),
    ({"config": {}, "ema": {"weights": [1, 2]}}, "'ema' entry holds no weights"),
    ({"config": {}, "model": {"w": 1.0}}, "'model' entry is not a set of weights"),
    ([1, 2, 3], "no config or weights"),
])
def test_checkpoints_of_the_wrong_layout_are_one_line(tmp_path, state, problem):
    torch.save(state, tmp_path / "odd.pt")
    with pytest.raises(checkpoint.CheckpointError, match=problem) as e:
        checkpoint.load(tmp_path / "odd.pt")
    assert "\n" not in str(e.value)


def test_garbage_is_not_a_readable_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x80\x02junk" * 10)
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint") as e:
        checkpoint.load(tmp_path / "junk.pt")
    assert "\n" not in str(e.value)


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(3), np.random.seed(4), random.seed(5)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's legacy state
    checkpoint.save_atomic({"rng": checkpoint.rng_state()}, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.standard_normal(3), np.random.rand(2), [random.random() for _ in range(3)])
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    checkpoint.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    again = (torch.rand(3), np.random.standard_normal(3), np.random.rand(2), [random.random() for _ in range(3)])
    assert torch.equal(expected[0], again[0])
    np.testing.assert_array_equal(expected[1], again[1])
    np.testing.assert_array_equal(expected[2], again[2])
    assert expected[3] == again[3]


def test_older_training_checkpoint_is_refused_then_upgraded(sharp_folder, tmp_path):
    cfg = load_config(resolve_config_path("tiny"), [f"data.roots=[{sharp_folder}]", "training.steps=1",
                                                   "training.eval_every=0"])
    latest = train(cfg, tmp_path / "run", device="cpu").latest
    state = torch.load(latest, weights_only=True)
    state["rng"] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    old = tmp_path / "old.pt"
    torch.save(state, old)  # the layout hidd wrote before weights-only loads
    with pytest.raises(checkpoint.CheckpointError, match="upgrade_checkpoint.py") as e:
        checkpoint.load(old)
    assert "\n" not in str(e.value) and "numpy" in str(e.value)
    new = tmp_path / "new.pt"
    upgrade_script().main([str(old), str(new)])
    upgraded = checkpoint.load(new)
    assert upgraded["step"] == 1
    assert all(torch.equal(upgraded["model"][k], v) for k, v in state["model"].items())
    checkpoint.set_rng_state(upgraded["rng"])
    after_upgrade = np.random.rand(3), random.random()
    np.random.set_state(state["rng"]["numpy"]), random.setstate(state["rng"]["python"])
    np.testing.assert_array_equal(after_upgrade[0], np.random.rand(3))
    assert after_upgrade[1] == random.random()
    with pytest.raises(SystemExit, match="exists already"):  # never overwrites
        upgrade_script().main([str(old), str(new)])


def upgrade_script():
    path = REPO / "scripts" / "upgrade_checkpoint.py"
    spec = importlib.util.spec_from_file_location("upgrade_checkpoint_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
