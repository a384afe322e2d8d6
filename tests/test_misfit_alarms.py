"""scripts/misfit_alarms.py: its counts, its takes, and a run on tiny photos with a tiny prior."""
import math

import pytest

from conftest import load_script, read_csv, synthetic_photo
from hidd.imageio import write_image

misfit_alarms = load_script("misfit_alarms")


def _row(condition, c, gain=1.2):
    return {"photo": "p", "condition": condition, "radius": 3.0, "c": c, "nfe": 12, "noise_gain": gain}


def test_false_alarms_are_exact_photos_above_and_misses_camera_photos_at_or_below():
    rows = [_row("exact", 0.2), _row("exact", 0.4), _row("exact", 0.6), _row("exact", math.nan),
            _row("camera", 0.3), _row("camera", 0.5), _row("camera", 0.55), _row("camera", 0.7)]
    table = {t["threshold"]: t for t in misfit_alarms.summary(rows)}
    assert table["WHITE_CORRELATION"]["false_alarms"] == "2 of 3" and table["WHITE_CORRELATION"]["misses"] == "1 of 4"
    assert table["WHITE_PSF_CORRELATION"]["false_alarms"] == "1 of 3"
    assert table["CORRELATED_MISFIT"]["misses"] == "3 of 4"  # 0.55 itself reads as not yet wholly correlated
    assert table["CORRELATED_MISFIT"]["false_alarm_bound"] == pytest.approx(0.865, abs=1e-3)  # 1 of 3, one-sided


def test_the_guards_false_alarms_are_exact_photos_whose_result_was_too_noisy():
    rows = [_row("exact", 0.2, 1.1), _row("exact", 0.2, 2.5), _row("exact", 0.2, math.nan), _row("camera", 0.6, 3.0)]
    guard = misfit_alarms.guard_alarms(rows, 2.0)
    assert guard["alarms"] == "1 of 2" and guard["range"] == "1.10–2.50"


def test_each_photo_gives_an_exact_and_a_camera_take_from_the_seed(tmp_path):
    for i in range(2):
        write_image(tmp_path / f"p{i}.png", synthetic_photo(i, 40))
    photos = sorted(tmp_path.glob("*.png"))
    first, again = (list(misfit_alarms.takes(photos, 32, (2.0, 4.0), seed)) for seed in (0, 0))
    assert [(t[0], t[1]) for t in first] == [("p0", "exact"), ("p0", "camera"), ("p1", "exact"), ("p1", "camera")]
    assert all(2.0 <= t[2] <= 4.0 and t[3].shape == (1, 3, 32, 32) for t in first)
    assert all(a[2] == b[2] and (a[3] == b[3]).all() for a, b in zip(first, again))
    assert not (first[0][3] == first[1][3]).all()


def test_a_run_on_tiny_photos_writes_its_takes_and_summary(tiny_checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    for i in range(2):
        write_image(photos / f"p{i}.png", synthetic_photo(i, 40))
    misfit_alarms.main(["--photos", str(photos), "--size", "32", "--radii", "2", "3", "--checkpoint",
                        str(tiny_checkpoint), "--output", str(tmp_path / "out")])
    rows = read_csv(tmp_path / "out" / "takes.csv")
    assert [(r["photo"], r["condition"]) for r in rows] == [("p0", "exact"), ("p0", "camera"), ("p1", "exact"),
                                                            ("p1", "camera")]
    assert all(math.isnan(float(r["c"])) == (int(r["nfe"]) == 0) for r in rows)  # c read where it was sampled
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| `WHITE_CORRELATION` | 0.35 |" in summary and "No-harm guard (`sampler.max_noise_gain` 2)" in summary
    with pytest.raises(SystemExit) as code:
        misfit_alarms.main(["--photos", str(tmp_path / "none")])
    assert code.value.code == 2 and "--photos" in capsys.readouterr().err
