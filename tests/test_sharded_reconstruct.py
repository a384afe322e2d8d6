"""Sharded reconstruction (torchrun, 2 CPU ranks on gloo) writes what one process writes, once; and the prefetch of
the next batch changes nothing."""
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import read_csv, synthetic_photo
from hidd.camera import Camera, LensPSF, PoissonGaussian
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.imageio import pixel_count, read_image, write_image
from hidd.prefetch import prefetched
from hidd.reconstruct import KILL_AFTER_IMAGES_ENV
from hidd.sharding import share

REPO = Path(__file__).resolve().parent.parent
FAST = ["--preset", "fast", "--set", "sampler.num_steps=2", "--curve-every", "1"]
GIVEN = [*FAST, "--set", "sampler.radius=2.5"]  # every photo sampled (a blind estimate may read one in focus)


def _photo(folder: Path, name: str, seed: int, size: int = 48) -> None:
    """A sharp photo and its defocused shot (blind radius about 2.5 px, so that it is sampled)."""
    sharp = synthetic_photo(seed, size)
    camera = Camera(psf=LensPSF(2.5), noise=PoissonGaussian(read=0.005))
    blurred = camera.render(torch.from_numpy(sharp).permute(2, 0, 1)[None],
                            generator=torch.Generator().manual_seed(seed))
    write_image(folder / "sharp" / f"{name}.png", sharp)
    write_image(folder / "blurred" / f"{name}.png", blurred[0].permute(1, 2, 0).numpy())


def _photos(folder: Path, n: int) -> None:
    for i in range(n):
        _photo(folder, f"im{i}", i)


def _torchrun(*args, env=None) -> subprocess.CompletedProcess:
    """hidd-reconstruct under torchrun, two CPU processes, as the README launches it."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "hidd.cli.reconstruct", *args, "--device", "cpu"], capture_output=True, text=True,
                          cwd=REPO, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def _one_process(*args) -> None:
    """hidd-reconstruct in this process, with one CPU thread as torchrun gives each of its processes (float sums
    round otherwise with two, which can move a pixel by 1/255)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reconstruct_main([*args, "--device", "cpu"])
    finally:
        torch.set_num_threads(threads)


def _close_outputs(one: Path, other: Path, names: list[str]) -> None:
    """PNGs within one 8-bit step, and the same decisions (NFE, share, reason), in two output folders whose batches
    differ: a photo's result does not depend on its batch beyond the network's rounding (oneDNN's convolutions round
    differently by batch size, about 1e-6 here)."""
    for name in names:
        a, b = (read_image(folder / f"{name}.png").pixels for folder in (one, other))
        assert np.abs(a - b).max() <= 1 / 255 + 1e-6, name
    rows = [read_csv(folder / "metrics.csv") for folder in (one, other)]
    assert [[row[k] for k in ("name", "nfe", "share", "reason")] for row in rows[0]] == \
        [[row[k] for k in ("name", "nfe", "share", "reason")] for row in rows[1]]


def _same_outputs(one: Path, other: Path, names: list[str]) -> None:
    """The same PNGs and metrics rows (but the seconds) in two output folders."""
    for name in names:
        assert np.array_equal(read_image(one / f"{name}.png").pixels, read_image(other / f"{name}.png").pixels), name
    rows = [[{k: v for k, v in row.items() if k != "seconds"} for row in read_csv(folder / "metrics.csv")]
            for folder in (one, other)]
    assert rows[0] == rows[1] and [row["name"] for row in rows[0]] == names
    assert sum(int(row["nfe"]) > 0 for row in rows[0]) >= len(names) - 1  # sampled, each drawing noise of its own


def test_rank_r_takes_every_nth_photo_and_every_photo_goes_to_one_rank():
    photos = list(range(7))
    shares = [share(photos, rank, 3) for rank in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(p for s in shares for p in s) == photos and share([0], 1, 2) == []


def test_photos_are_dealt_by_their_pixels_largest_first_each_rank_keeping_input_order():
    photos = ["a", "b", "c", "d"]
    pixels = [400, 100, 400, 100]  # round-robin: rank 0 takes a and c (800 px), rank 1 b and d (200)
    shares = [share(photos, rank, 2, pixels) for rank in range(2)]
    assert shares == [["a", "b"], ["c", "d"]]  # a → 0, c → 1, then b to the lowest of the least loaded, d to 1
    assert [sum(pixels[photos.index(p)] for p in s) for s in shares] == [500, 500]
    photos, pixels = photos + ["e", "f"], pixels + [100, 100]
    assert [share(photos, rank, 3, [1] * 6) for rank in range(3)] == [share(photos, rank, 3) for rank in range(3)]
    with pytest.raises(ValueError, match="5 costs for 6 items"):
        share(photos, 0, 2, pixels[:5])


def test_unknown_costs_count_as_the_median_and_ties_go_to_the_rank_with_fewest_photos():
    photos = list(range(6))
    assert [share(photos, rank, 3, [0] * 6) for rank in range(3)] == [[0, 3], [1, 4], [2, 5]]
    # the unread 0 counts as 100 (not 0, which would put it wherever the loads tie): 500 → rank 0, the five 100s → 1
    assert [share(photos, rank, 2, [500, 100, 0, 100, 100, 100]) for rank in range(2)] == [[0], [1, 2, 3, 4, 5]]
    assert [share(photos, rank, 2, [500, 100, 0, 100, 100, 200]) for rank in range(2)] == [[0, 4], [1, 2, 3, 5]]


def test_a_photos_pixels_come_from_its_header_and_an_unreadable_one_costs_nothing(tmp_path):
    import tifffile

    write_image(tmp_path / "a.png", np.zeros((20, 30, 3)))
    # a float TIFF, which Pillow cannot open
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((12, 7, 3), np.float32), photometric="rgb")
    (tmp_path / "b.png").write_bytes(b"not a png")
    assert pixel_count(tmp_path / "a.png") == 600 and pixel_count(tmp_path / "f.tif") == 84
    assert pixel_count(tmp_path / "b.png") == 0 and pixel_count(tmp_path / "missing.png") == 0
    assert pixel_count(tmp_path) == 0


def test_prefetched_items_come_in_order_one_ahead_and_errors_reach_the_caller():
    made, held = [], []

    def items():
        for i in range(4):
            made.append((i, threading.current_thread().name))
            yield i

    for item in prefetched(items()):
        held.append((item, len(made)))
    assert [item for item, _ in held] == [0, 1, 2, 3]
    assert all(count <= item + 2 for item, count in held)  # at most one made ahead of the one held
    assert all(name.startswith("hidd-prefetch") for _, name in made)
    assert list(prefetched(items(), enabled=False)) == [0, 1, 2, 3]

    def failing():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(prefetched(failing()))


def test_prefetch_changes_no_output(tiny_checkpoint, tmp_path):
    _photos(tmp_path, 3)
    _photo(tmp_path, "other", 10, size=56)  # a size of its own: a batch of its own
    common = ["--input", str(tmp_path / "blurred"), "--target", str(tmp_path / "sharp"), "--checkpoint",
              str(tiny_checkpoint), *FAST, "--device", "cpu"]
    for prefetch in ("off", "on"):
        for batch in ("1", "2"):
            reconstruct_main([*common, "--output", str(tmp_path / f"{prefetch}{batch}"), "--prefetch", prefetch,
                              "--batch-size", batch])
    names = ["im0", "im1", "im2", "other"]
    _same_outputs(tmp_path / "off1", tmp_path / "on1", names)
    _same_outputs(tmp_path / "off2", tmp_path / "on2", names)
    _close_outputs(tmp_path / "off1", tmp_path / "off2", names)  # the network's rounding differs by batch size


def test_two_ranks_write_each_photo_once_and_what_one_process_writes(tiny_checkpoint, tmp_path):
    _photos(tmp_path, 5)
    common = ["--input", str(tmp_path / "blurred"), "--target", str(tmp_path / "sharp"), "--checkpoint",
              str(tiny_checkpoint), *GIVEN]
    _one_process(*common, "--output", str(tmp_path / "one"))
    sharded = _torchrun(*common, "--output", str(tmp_path / "two"))
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    names = [f"im{i}" for i in range(5)]
    _same_outputs(tmp_path / "one", tmp_path / "two", names)
    assert sorted(p.name for p in (tmp_path / "two").glob("*.png")) == [f"{name}.png" for name in names]
    assert sorted(p.name for p in (tmp_path / "two").glob("*.csv")) == ["metrics.csv"]  # the ranks' rows merged
    assert sharded.stdout.count("mean ") == 1 and sharded.stdout.count("PSNR in") == 1  # one table
    assert "5 image(s) written" in sharded.stdout and sharded.stdout.count("image(s) written") == 1

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tags = set(EventAccumulator(str(tmp_path / "two" / "tb")).Reload().Tags()["scalars"])
    assert {f"psnr/{name}" for name in names} | {"psnr/mean", "ssim/mean"} <= tags  # one run: every photo's curves

    again = _torchrun(*common, "--output", str(tmp_path / "two"), "--skip-existing")  # both ranks: no photo left
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("5 image(s) already done") == 1 and again.stdout.count("mean ") == 1
    _same_outputs(tmp_path / "one", tmp_path / "two", names)


def test_a_killed_sharded_run_resumes_to_the_same_outputs(tiny_checkpoint, tmp_path):
    _photos(tmp_path, 5)
    common = ["--input", str(tmp_path / "blurred"), "--checkpoint", str(tiny_checkpoint), *GIVEN]
    _one_process(*common, "--output", str(tmp_path / "one"))
    killed = _torchrun(*common, "--output", str(tmp_path / "two"), env={KILL_AFTER_IMAGES_ENV: "2"})
    assert killed.returncode != 0  # each rank SIGKILLed after its second image, before that image's row
    resumed = _torchrun(*common, "--output", str(tmp_path / "two"), "--skip-existing")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _same_outputs(tmp_path / "one", tmp_path / "two", [f"im{i}" for i in range(5)])
    assert sorted(p.name for p in (tmp_path / "two").glob("*.csv")) == ["metrics.csv"]


def test_a_photo_failing_on_one_rank_is_one_line_and_the_run_exits_1(tiny_checkpoint, tmp_path):
    write_image(tmp_path / "in" / "a.png", synthetic_photo(0, 32))  # rank 0's
    (tmp_path / "in" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)  # rank 1's
    result = _torchrun("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--checkpoint",
                       str(tiny_checkpoint), *FAST)
    assert result.returncode == 1
    assert result.stderr.count("b.png") == 1 and result.stderr.count("1 input(s) failed") == 1
    assert [row["name"] for row in read_csv(tmp_path / "out" / "metrics.csv")] == ["a"]
