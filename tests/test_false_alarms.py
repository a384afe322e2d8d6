"""scripts/false_alarms.py: the counts and bounds it states, the statistics it reads, and a run on tiny photos."""
import json
import math

import numpy as np
import pytest
import torch

from conftest import load_script

false_alarms = load_script("false_alarms")


def _take(photo, camera, value):
    return {"photo": photo, "camera": camera, "value": value}


def test_summarise_counts_a_photo_once_over_its_takes_and_bounds_the_rate_over_photos():
    test = false_alarms.Test("hidd.x.MARGIN", 0.75, "ratio; ≤ 0.75", lambda t: t["value"], lambda v: v <= 0.75)
    takes = [_take("a", "", 0.5), _take("a", 0, 0.6), _take("a", 1, 0.7), _take("b", "", 1.0), _take("b", 0, 1.2),
             _take("c", "", None), _take("c", 0, math.nan), _take("d", "", 0.9)]  # c: never asked
    row = false_alarms.summarise(takes, test)
    as_is, camera = row["as_is"], row["camera"]
    assert (as_is["takes"], as_is["takes_alarmed"], as_is["photos"], as_is["photos_alarmed"]) == (3, 1, 3, 1)
    assert (camera["takes"], camera["takes_alarmed"], camera["photos"], camera["photos_alarmed"]) == (3, 2, 2, 1)
    assert camera["alarmed"] == ["a"] and camera["range"] == [0.6, 0.7, 1.2]
    # one-sided exact bounds: 1 of 2 photos solves 1 − p² = 0.05; 1 of 3 solves (1 − p)³ + 3p(1 − p)² = 0.05
    assert camera["bound"] == pytest.approx(0.95 ** 0.5, abs=1e-6)
    assert as_is["bound"] == pytest.approx(0.86465, abs=1e-4)
    none = false_alarms.summarise([_take("e", "", 2.0)] * 3, test)["as_is"]
    assert none["photos_alarmed"] == 0 and none["bound"] == pytest.approx(1 - 0.05)  # 0 of 1 photo
    table = false_alarms.markdown([row], "python scripts/false_alarms.py --x", {"as is": (1, 4)})
    assert "| `MARGIN` | 0.75 | ratio; ≤ 0.75 | 1/3 (1/3) | 86.5% |" in table and "1 of 4" in table


def test_the_tests_carry_todays_values():
    tests = {t.constant: t for t in false_alarms.default_tests()}
    from hidd import no_harm
    from hidd.blind import edge_bound, psf_fit
    assert tests["hidd.blind.psf_fit.IN_FOCUS_MARGIN"].value == psf_fit.IN_FOCUS_MARGIN
    assert tests["hidd.blind.edge_bound.MAX_EDGE_SHARPNESS"].value == edge_bound.MAX_EDGE_SHARPNESS
    assert tests["hidd.no_harm.MAX_NOTCH_EXCESS"].alarm(no_harm.MAX_NOTCH_EXCESS + 0.01)
    assert not tests["hidd.no_harm.MAX_NOTCH_EXCESS"].alarm(no_harm.MAX_NOTCH_EXCESS)
    together = tests["the three vetoes of a coarse find"]  # the last of its rows: at the largest radius
    take = {"band_excess": {"8.0": 5.0}, "finest_fit_ratio": {"8.0": 2.0}, "edge_sharpness": {"8.0": 1.43}}
    assert together.read(take) == pytest.approx(1.1) and not together.alarm(together.read(take))  # edges refuse
    take["edge_sharpness"]["8.0"] = 0.7
    assert together.alarm(together.read(take))  # all three let the blur through (band 5.0 / 5.3 is the largest)
    take["finest_fit_ratio"]["8.0"] = None
    assert together.read(take) is None  # one not asked: the take is not counted


def _photo(blur: float = 0.0, size: int = 96) -> torch.Tensor:
    """(1, 3, size, size) in [0, 1]: skimage's astronaut, disk-blurred in linear light where blur > 0."""
    from skimage import data, transform
    from hidd.camera.pipeline import Camera
    from hidd.camera.psf import LensPSF
    pixels = transform.resize(data.astronaut(), (size, size), anti_aliasing=True)
    photo = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float()
    return Camera(psf=LensPSF(blur)).render(photo) if blur > 0 else photo


def test_tile_statistics_read_the_tiles_as_the_default_does():
    from hidd.blind.radius_map import tile_radius_quantiles
    from hidd.camera.tone import tone_curve
    linear = tone_curve("srgb").decode(_photo(3.0))[0]
    tiles = false_alarms.tile_statistics(linear)
    assert tiles["quantiles"] == pytest.approx(list(tile_radius_quantiles(linear, (0.25, 0.75))))
    assert tiles["tiles_blurred"] > 0 and tiles["quantiles"][0] >= 1.2  # the statistic sees a real blur


def test_statistics_tell_a_blurred_photo_from_a_sharp_one():
    sharp = false_alarms.take_statistics(_photo(), 30.0, radii=(3.0,), notch_radii=(4.0,), edge_notch_radii=(1.6,))
    blurred = false_alarms.take_statistics(_photo(3.0), 30.0, radii=(3.0,), notch_radii=(4.0,),
                                           edge_notch_radii=(1.6,))
    assert blurred["fit_ratio"] < 0.75 < sharp["fit_ratio"]  # IN_FOCUS_MARGIN's statistic
    assert blurred["edge_sharpness"]["3.0"] <= 1.3 < sharp["edge_sharpness"]["3.0"]  # MAX_EDGE_SHARPNESS's
    assert sharp["fit_radius"] < 1.2 <= blurred["fit_radius"]


def test_a_run_on_tiny_photos_writes_its_table_and_statistics(tmp_path, capsys):
    from hidd.imageio import write_image
    photos = tmp_path / "photos"
    write_image(photos / "astronaut.png", _photo(size=80)[0].permute(1, 2, 0).numpy())
    write_image(photos / "small.png", np.full((40, 40, 3), 0.5))  # smaller than the crop: skipped
    out = tmp_path / "out"
    args = ["--photos", str(photos), "--sizes", "64", "--camera-draws", "1", "--radii", "3", "--notch-radii", "4",
            "--edge-notch-radii", "2.1", "--output", str(out)]
    false_alarms.main(args)
    record = json.loads((out / "false_alarms.json").read_text())
    assert record["command"] == "python scripts/false_alarms.py " + " ".join(args)
    assert [(t["photo"], t["camera"]) for t in record["takes"]] == [("astronaut", ""), ("astronaut", 0)]
    table = (out / "false_alarms.md").read_text()
    assert record["command"] in table and table.count("`MAX_EDGE_SHARPNESS`") == 2  # its own blur, and r = 3
    assert "2 takes of 2 photos" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        false_alarms.main([*args, "--camera-draws", "-1"])
    assert "false_alarms: error:" in capsys.readouterr().err
