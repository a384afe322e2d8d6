"""Tests for scripts/ablation.py with an untrained tiny model and two 32×32 pairs."""
import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.filters import gaussian

from conftest import make_tiny_checkpoint, synthetic_photo
from hidd.imageio import read_image, write_image

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ablation.py"
spec = importlib.util.spec_from_file_location("ablation_script", SCRIPT)
ablation = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = ablation
spec.loader.exec_module(ablation)

PRESETS = ["ablation-p", "ablation-pc", "ablation-pdc", "ablation-pcdc"]


@pytest.fixture(scope="module")
def ablation_run(tmp_path_factory):
    """One ablation over two blurred/sharp pairs (3 sampler steps), shared by the tests below."""
    root = tmp_path_factory.mktemp("ablation")
    for i in range(2):
        sharp = synthetic_photo(i, 32)
        write_image(root / "sharp" / f"im{i}.png", sharp)
        write_image(root / "blurred" / f"im{i}.png", gaussian(sharp, sigma=1.5, channel_axis=-1))
    checkpoint = make_tiny_checkpoint(root / "tiny.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 32×32 network is too small to gain from threads, and loses a lot on busy CPUs
    try:
        ablation.main(["--input", str(root / "blurred"), "--target", str(root / "sharp"), "--output", str(root / "out"),
                       "--checkpoint", str(checkpoint), "--set", "sampler.num_steps=3", "--device", "cpu"])
    finally:
        torch.set_num_threads(threads)
    return root


def test_each_preset_gets_its_folder_of_results(ablation_run):
    for preset in PRESETS:
        folder = ablation_run / "out" / preset
        assert sorted(p.name for p in folder.glob("*.png")) == ["im0.png", "im1.png"]
        assert "num_steps: 3" in (folder / "config.yaml").read_text()


def test_csv_has_the_four_table_rows(ablation_run):
    with open(ablation_run / "out" / "ablation.csv", newline="") as f:
        rows = {row["variant"]: row for row in csv.DictReader(f)}
    assert list(rows) == ["P", "P+C", "P+DC", "P+C+DC"]
    assert [rows[v]["preset"] for v in rows] == PRESETS
    assert all(int(row["images"]) == 2 and np.isfinite(float(row["psnr"])) for row in rows.values())
    assert int(rows["P"]["nfe"]) < int(rows["P+C"]["nfe"])  # the corrector costs network evaluations
    assert float(rows["P+C+DC"]["paper_psnr"]) == 26.95


def test_data_consistency_keeps_the_result_near_the_input(ablation_run):
    def distance_to_input(preset):
        return np.mean([np.abs(read_image(ablation_run / "out" / preset / f"im{i}.png").pixels
                               - read_image(ablation_run / "blurred" / f"im{i}.png").pixels).mean()
                        for i in range(2)])

    assert distance_to_input("ablation-pdc") < distance_to_input("ablation-p")


def test_preset_option_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        ablation.main(["--input", "x", "--output", "y", "--preset", "paper"])
    assert exit_info.value.code == 2
    assert "--preset" in capsys.readouterr().err


def test_ground_truth_is_required(tmp_path, capsys):
    write_image(tmp_path / "blurred" / "a.png", synthetic_photo(0, 32))
    with pytest.raises(SystemExit) as exit_info:
        ablation.main(["--input", str(tmp_path / "blurred"), "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--target or --dataset" in err
