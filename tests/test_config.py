import pytest

from hidd.cli.train import main as train_main
from hidd.config import CONFIG_DIR, ConfigError, apply_overrides, load_config, resolve_config_path, Config


def test_shipped_configs_load():
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        load_config(path)


def test_paper_config_is_the_papers_model():
    cfg = load_config(resolve_config_path("paper_gray256"))
    assert cfg.model.channels == 1 and cfg.model.nf == 64 and cfg.data.image_size == 256
    assert cfg.sde.sigma_min == 0.01 and cfg.sde.sigma_max == 300 and cfg.sde.num_scales == 1000
    assert cfg.training.lr == 2e-4


def test_override_types_are_checked_and_converted():
    cfg = apply_overrides(Config(), ["training.lr=1e-3", "training.steps=500", "model.ch_mult=[1,2]",
                                     "data.random_flip=false", "data.roots=[a, b]"])
    assert cfg.training.lr == 1e-3 and isinstance(cfg.training.steps, int) and cfg.training.steps == 500
    assert cfg.model.ch_mult == [1, 2] and cfg.data.random_flip is False and cfg.data.roots == ["a", "b"]
    with pytest.raises(ConfigError, match="training.steps: expected an integer"):
        apply_overrides(Config(), ["training.steps=abc"])
    with pytest.raises(ConfigError, match="training.steps: expected an integer"):
        apply_overrides(Config(), ["training.steps=2.5"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        apply_overrides(Config(), ["training.lr"])


def test_unknown_keys_are_rejected_with_valid_list(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'training.lrr' \(did you mean 'lr'\?\); valid keys of training: steps"):
        apply_overrides(Config(), ["training.lrr=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  nff: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'model.nff'"):
        load_config(bad)
    bad.write_text("modle:\n  nf: 3\n")
    with pytest.raises(ConfigError, match=r"unknown section 'modle'.*valid sections: data, model"):
        load_config(bad)


def test_defaults_are_not_shared_between_configs():
    a = apply_overrides(Config(), ["model.ch_mult=[1]"])
    assert Config().model.ch_mult == [1, 1, 2, 2, 2, 2, 2] and a.model.ch_mult == [1]


def test_cli_dry_run_and_errors(capsys):
    train_main(["--config", "tiny", "--workdir", "unused", "--set", "training.steps=7", "--dry-run"])
    out = capsys.readouterr().out
    assert "steps: 7" in out and "nf: 16" in out
    with pytest.raises(SystemExit) as e:
        train_main(["--config", "tiny", "--workdir", "unused", "--set", "training.stepz=7"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key 'training.stepz'" in err and "Traceback" not in err


def test_a_config_can_inherit_a_sibling_file(tmp_path):
    (tmp_path / "parent.yaml").write_text("training:\n  lr: 0.001\n  batch_size: 4\n")
    (tmp_path / "child.yaml").write_text("inherits: parent\ntraining:\n  batch_size: 8\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert (cfg.training.lr, cfg.training.batch_size) == (0.001, 8)
    (tmp_path / "orphan.yaml").write_text("inherits: nowhere\n")
    with pytest.raises(ConfigError, match="orphan.yaml: inherits nowhere"):
        load_config(tmp_path / "orphan.yaml")
    (tmp_path / "a.yaml").write_text("inherits: b\n")
    (tmp_path / "b.yaml").write_text("inherits: a\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
