"""scripts/compare_estimation.py: it records the estimate's decisions per photo and counts those that moved."""
import json

import pytest

from conftest import load_script, synthetic_photo
from hidd.imageio import write_image

compare_estimation = load_script("compare_estimation")


def _record(path, rows):
    path.write_text(json.dumps({"photos": rows}))
    return str(path)


def test_compare_counts_moved_radii_and_verdicts(tmp_path, capsys):
    base = {"radius": 3.0, "in_focus": False, "at_bound": False, "gray": False, "max_share": 1.0,
            "photo_noise": 0.01, "noise_sigma": 0.01}
    before = _record(tmp_path / "a.json", {"a": base, "b": base, "c": {**base, "radius": 0.0, "in_focus": True}})
    after = _record(tmp_path / "b.json", {"a": {**base, "radius": 3.05},  # 1.6 %: agrees
                                          "b": {**base, "radius": 3.1},  # 3.2 %: moved
                                          "c": {**base, "radius": 1.3, "in_focus": False}})  # a verdict moved
    compare_estimation.main(["compare", before, after])
    table = capsys.readouterr().out
    assert "| 3 | 2 | 1 | 0 | 0 | 0 | 0 |" in table
    assert "radius moved: b" in table and "in_focus moved: c" in table and "radius moved: a" not in table


def test_record_writes_every_photo(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(2):
        write_image(folder / f"p{seed}.png", synthetic_photo(seed, 48))
    compare_estimation.main(["record", str(folder), "--output", str(tmp_path / "r.json")])
    rows = json.loads((tmp_path / "r.json").read_text())["photos"]
    assert sorted(rows) == [f"{tmp_path.name}/p0.png", f"{tmp_path.name}/p1.png"]
    assert all(row["radius"] is not None and row["noise_sigma"] > 0 for row in rows.values())


def test_time_prints_one_row_per_size(capsys):
    compare_estimation.main(["time", "--sizes", "48x32:2", "--repeats", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 48x32 |")]
    assert len(rows) == 1 and rows[0].split("|")[2].strip() == "2"


def test_a_missing_or_foreign_record_is_one_line(tmp_path):
    (tmp_path / "foreign.json").write_text("[1, 2]")
    for name in ("missing.json", "foreign.json"):
        with pytest.raises(SystemExit) as stop:
            compare_estimation.main(["compare", str(tmp_path / name), str(tmp_path / name)])
        assert name in str(stop.value) and "\n" not in str(stop.value)
