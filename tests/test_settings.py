"""Config values are checked before a run starts: names against their registries, numbers against their domains."""
import dataclasses

import pytest

from conftest import synthetic_photo
from hidd.baselines.config import BaselineConfig
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.cli.train import main as train_main
from hidd.config import Config, ConfigError, apply_overrides
from hidd.imageio import write_image
from hidd.registry import Registry
from hidd.rules import one_of
from hidd.settings import RULES, check_values


def test_every_key_of_every_section_has_a_rule_and_the_defaults_pass_it():
    for document in (Config(), BaselineConfig()):
        for section in dataclasses.fields(document):
            value = getattr(document, section.name)
            assert {f.name for f in dataclasses.fields(value)} == set(RULES[type(value)]), section.name
        check_values(document)


@pytest.mark.parametrize("override, message", [
    ("sampler.tone_curve=srgbb", "sampler.tone_curve: 'srgbb' is not valid; did you mean 'srgb'? choose from gamma, "
                                 "none, srgb"),
    ("sampler.consistency=proxx", "did you mean 'prox'? choose from gradient, interpolate, none, prox"),
    ("sampler.psf=disc", "sampler.psf: 'disc' is not valid; did you mean 'disk'?"),
    ("sampler.radius=-3", "sampler.radius: -3.0 is not valid; it must be a number ≥ 0"),
    ("sampler.score_ensemble=3", "choose from 1, 2, 4"),
    ("sampler.t_end=1", "it must be a number in (0, 1)"),
    ("sampler.blades=2", "it must be 0 or a number ≥ 3"),
    ("training.eval_sigmas=[0.1,-1]", "training.eval_sigmas: [0.1, -1.0] is not valid; it must be a number > 0"),
    ("training.precision=bf61", "did you mean 'bf16'?"),
    ("data.mode=cropp", "choose from crop, resize"),
    ("model.channels=2", "choose from 1, 3"),
    ("sde.sigma_min=500", "sde.sigma_min (500) exceeds sde.sigma_max (300)"),
])
def test_a_value_that_means_nothing_is_refused_naming_the_key_and_what_it_may_be(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]").replace("?", r"\?")):
        check_values(apply_overrides(Config(), [override]))


def test_names_are_read_when_checked_so_a_newly_registered_stage_is_valid_at_once():
    registry = Registry("widget")
    rule = one_of(registry.names)
    assert rule("spoke") == "choose from "
    registry.register("spoke")(type("Spoke", (), {}))
    assert rule("spoke") is None and rule("spoek") == "did you mean 'spoke'? choose from spoke"


@pytest.mark.parametrize("override", ["sampler.tone_curve=srgbb", "sampler.consistency=proxx", "sampler.psf=disc",
                                      "sampler.radius=-3"])
def test_reconstruct_refuses_a_wrong_value_before_reading_any_image(tiny_checkpoint, tmp_path, capsys, override):
    for i in range(3):
        write_image(tmp_path / "in" / f"{i}.png", synthetic_photo(i, 32))
    with pytest.raises(SystemExit) as exit_status:
        reconstruct_main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--checkpoint",
                          str(tiny_checkpoint), "--set", override])
    err = capsys.readouterr().err
    assert exit_status.value.code == 2 and err.count("\n") == 1 and override.split("=")[0] in err
    assert not (tmp_path / "out").exists()  # nothing written, no image read or failed one by one


def test_training_refuses_a_wrong_value_before_reading_its_data(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_status:
        train_main(["--config", "tiny", "--workdir", str(tmp_path / "run"), "--set", "training.loss_reduction=avg"])
    assert exit_status.value.code == 2
    assert "training.loss_reduction: 'avg' is not valid; choose from sum, mean" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
