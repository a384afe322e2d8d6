"""Tests for hidd.data on tiny sharp-image folders written into tmp_path."""

import functools
import logging

import numpy as np
import pytest
import skimage.io
import torch

from hidd.data import SharpImageDataset, held_out_files, is_usable, sharp_image_files
from hidd.imageio import write_image


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    skimage.io.imsave(path, array, check_contrast=False)
    return path


def noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def position_coded(height, width):
    """16-bit gray image whose value encodes its own position, so a crop reveals where it came from."""
    return (np.arange(height * width, dtype=np.float32).reshape(height, width) + 1) / 65535


def make_folder(root, count=3, size=(24, 20)):
    for index in range(count):
        save(root / f"img{index}.png", noise((*size, 3), seed=index))
    return root


def test_crop_mode_returns_a_window_of_the_image(tmp_path):
    write_image(tmp_path / "coded.png", position_coded(20, 30), bit_depth=16)
    dataset = SharpImageDataset(roots=[tmp_path], image_size=8, channels=1, random_flip=False)
    torch.manual_seed(0)
    patch = dataset[0]
    assert patch.shape == (1, 8, 8)
    assert patch.dtype == torch.float32
    first = int(round(patch[0, 0, 0].item() * 65535)) - 1
    top, left = divmod(first, 30)
    expected = position_coded(20, 30)[top : top + 8, left : left + 8]
    np.testing.assert_allclose(patch[0].numpy(), expected, rtol=1e-6)


def test_crops_follow_torch_seed(tmp_path):
    dataset = SharpImageDataset(roots=[make_folder(tmp_path, count=1, size=(40, 40))], image_size=8)
    torch.manual_seed(3)
    first = dataset[0]
    torch.manual_seed(3)
    assert torch.equal(dataset[0], first)
    torch.manual_seed(4)
    assert not torch.equal(dataset[0], first)


def test_values_lie_in_unit_range(tmp_path):
    dataset = SharpImageDataset(roots=[make_folder(tmp_path)], image_size=16)
    patches = torch.stack([dataset[index] for index in range(len(dataset))])
    assert patches.shape == (3, 3, 16, 16)
    assert 0.0 <= patches.min() and patches.max() <= 1.0


def test_unusable_files_are_skipped_with_one_line_warnings(tmp_path, caplog):
    make_folder(tmp_path, count=2)
    save(tmp_path / "small.png", noise((8, 40, 3)))
    (tmp_path / "notes.png").write_text("not an image")
    data = (tmp_path / "img0.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="hidd.data"):
        dataset = SharpImageDataset(roots=[tmp_path], image_size=16)
    assert [path.name for path in dataset.files] == ["img0.png", "img1.png"]
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert all("\n" not in message for message in messages)
    assert any("small.png" in message and "smaller than the 16×16 crop" in message for message in messages)
    assert any("notes.png" in message and "cannot be decoded" in message for message in messages)
    assert any("cut.png" in message for message in messages)


def test_small_images_are_fine_in_resize_mode(tmp_path):
    save(tmp_path / "flat.png", np.full((6, 10, 3), 51, np.uint8))
    dataset = SharpImageDataset(roots=[tmp_path], image_size=16, mode="resize")
    patch = dataset[0]
    assert patch.shape == (3, 16, 16)
    np.testing.assert_allclose(patch.numpy(), 51 / 255, atol=1e-6)


def test_nothing_usable_is_a_one_line_error(tmp_path):
    save(tmp_path / "a.png", noise((4, 4, 3)))
    save(tmp_path / "b.png", noise((4, 4, 3)))
    with pytest.raises(ValueError) as caught:
        SharpImageDataset(roots=[tmp_path], image_size=16)
    assert str(caught.value) == f"no usable training images in {tmp_path} (2 skipped: a.png, b.png)"


def test_empty_and_missing_roots_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files found"):
        SharpImageDataset(roots=[tmp_path / "empty"], image_size=4)
    with pytest.raises(ValueError, match="no such folder"):
        SharpImageDataset(roots=[tmp_path / "missing"], image_size=4)


def test_dpdd_root_uses_the_sharp_targets_of_the_split(tmp_path):
    for folder in ["train_c/target", "train_c/source", "val_c/target"]:
        make_folder(tmp_path / folder, count=2 if "train" in folder else 1)
    train = SharpImageDataset(roots=[tmp_path], image_size=8)
    val = SharpImageDataset(roots=[tmp_path], image_size=8, split="val")
    assert {path.parent.relative_to(tmp_path).as_posix() for path in train.files} == {"train_c/target"}
    assert len(train) == 2
    assert [path.parent.relative_to(tmp_path).as_posix() for path in val.files] == ["val_c/target"]


def test_several_roots_are_combined(tmp_path):
    make_folder(tmp_path / "mine", count=2)
    make_folder(tmp_path / "dpdd" / "train_c" / "target", count=1)
    dataset = SharpImageDataset(roots=[tmp_path / "mine", tmp_path / "dpdd"], image_size=8)
    assert len(dataset) == 3


def test_gray_files_are_replicated_in_rgb_datasets(tmp_path):
    save(tmp_path / "gray.png", noise((12, 12)))
    patch = SharpImageDataset(roots=[tmp_path], image_size=8)[0]
    assert patch.shape == (3, 8, 8)
    assert torch.equal(patch[0], patch[1]) and torch.equal(patch[1], patch[2])


def test_rgb_files_become_luminance_in_gray_datasets(tmp_path):
    red = np.zeros((12, 12, 3), np.uint8)
    red[..., 0] = 255
    save(tmp_path / "red.png", red)
    patch = SharpImageDataset(roots=[tmp_path], image_size=8, channels=1)[0]
    assert patch.shape == (1, 8, 8)
    np.testing.assert_allclose(patch.numpy(), 0.2125, atol=1e-4)


def test_alpha_channel_is_dropped_not_skipped(tmp_path):
    save(tmp_path / "rgba.png", np.dstack([np.full((10, 10, 3), 200, np.uint8), np.zeros((10, 10), np.uint8)]))
    patch = SharpImageDataset(roots=[tmp_path], image_size=8)[0]
    assert patch.shape == (3, 8, 8)
    np.testing.assert_allclose(patch.numpy(), 200 / 255, atol=1e-6)


def test_random_flip_mirrors_horizontally_some_of_the_time(tmp_path):
    ramp = np.tile(np.linspace(0, 255, 8).astype(np.uint8), (8, 1))
    save(tmp_path / "ramp.png", ramp)
    torch.manual_seed(0)
    dataset = SharpImageDataset(roots=[tmp_path], image_size=8, channels=1)
    rising = [bool(patch[0, 0, 0] < patch[0, 0, -1]) for patch in (dataset[0] for _ in range(40))]
    assert any(rising) and not all(rising)
    unflipped = SharpImageDataset(roots=[tmp_path], image_size=8, channels=1, random_flip=False)
    assert all(unflipped[0][0, 0, 0] < unflipped[0][0, 0, -1] for _ in range(10))


def test_cache_is_lossless_and_used(tmp_path):
    write_image(tmp_path / "deep.png", position_coded(20, 20), bit_depth=16)
    save(tmp_path / "shallow.png", noise((20, 20, 3)))
    plain = SharpImageDataset(roots=[tmp_path], image_size=8)
    cached = SharpImageDataset(roots=[tmp_path], image_size=8, cache=True)
    for index in range(2):
        torch.manual_seed(index)
        expected = plain[index]
        torch.manual_seed(index)
        assert torch.equal(cached[index], expected)
    for path in list(tmp_path.iterdir()):
        path.unlink()
    assert cached[0].shape == (3, 8, 8)  # served from memory after the files are gone


def test_returned_tensors_do_not_share_memory_with_the_cache(tmp_path):
    save(tmp_path / "gray.png", np.full((12, 12), 100, np.uint8))
    dataset = SharpImageDataset(
        roots=[tmp_path], image_size=8, mode="resize", channels=1, cache=True, random_flip=False
    )
    dataset[0].zero_()
    assert dataset[0].min() > 0


def test_exclude_leaves_files_out(tmp_path):
    make_folder(tmp_path, count=3)
    dataset = SharpImageDataset(roots=[tmp_path], image_size=8, exclude=[str(tmp_path / "img1.png")])
    assert [path.name for path in dataset.files] == ["img0.png", "img2.png"]


def test_held_out_files_are_deterministic_spread_and_split_off(tmp_path):
    make_folder(tmp_path, count=6)
    held = held_out_files([tmp_path], 2)
    assert held == held_out_files([tmp_path], 2)
    assert [path.name for path in held] == ["img0.png", "img3.png"]
    train = SharpImageDataset(roots=[tmp_path], image_size=8, exclude=held)
    val = SharpImageDataset(roots=[tmp_path], image_size=8, only=held)
    assert len(train) == 4
    assert val.files == held
    assert not set(train.files) & set(val.files)


def test_held_out_files_are_chosen_among_usable_ones(tmp_path):
    make_folder(tmp_path, count=6)
    (tmp_path / "img0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 20)  # first in sorted order: was held out
    save(tmp_path / "img3.png", noise((4, 4, 3)))  # smaller than the crop
    usable = functools.partial(is_usable, image_size=8)
    held = held_out_files([tmp_path], 2, usable=usable)
    assert [path.name for path in held] == ["img1.png", "img4.png"]  # the next usable file after each position
    assert [path.name for path in held_out_files([tmp_path], 2)] == ["img0.png", "img3.png"]  # unchecked: as before
    with pytest.raises(ValueError, match="only 4 are usable"):
        held_out_files([tmp_path], 5, usable=usable)


def test_held_out_must_leave_training_images(tmp_path):
    make_folder(tmp_path, count=2)
    with pytest.raises(ValueError, match="cannot hold out 2 of the 2 images"):
        held_out_files([tmp_path], 2)


def test_single_path_is_accepted_for_roots(tmp_path):
    make_folder(tmp_path, count=2)
    assert sharp_image_files(str(tmp_path)) == sharp_image_files([tmp_path])


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"mode": "tile"}, "mode"),
        ({"channels": 2}, "channels"),
        ({"image_size": 0}, "image_size"),
        ({"split": "test"}, "split"),
        ({"exposure": -1.0}, "exposure"),
        ({"scale_jitter": 0.5}, "scale_jitter"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, arguments, problem):
    make_folder(tmp_path, count=1)
    with pytest.raises(ValueError, match=problem):
        SharpImageDataset(**{"roots": [tmp_path], "image_size": 8, **arguments})


def test_scale_jitter_shrinks_a_larger_window_and_never_enlarges(tmp_path):
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))  # value = column / 63
    write_image(tmp_path / "ramp.png", ramp, bit_depth=16)
    plain = SharpImageDataset(roots=[tmp_path], image_size=16, channels=1, random_flip=False)
    jittered = SharpImageDataset(roots=[tmp_path], image_size=16, channels=1, random_flip=False, scale_jitter=2.0)
    slopes = []
    for seed in range(20):
        torch.manual_seed(seed)
        assert np.diff(plain[0][0, 8].numpy()).mean() == pytest.approx(1 / 63, rel=1e-3)
        torch.manual_seed(seed)
        crop = jittered[0]
        assert crop.shape == (1, 16, 16) and 0 <= crop.min() and crop.max() <= 1
        slopes.append(np.diff(crop[0, 8, 2:-2].numpy()).mean() * 63)  # the window's side over 16
    assert 1 - 1e-3 <= min(slopes) and max(slopes) <= 2 + 1e-3 and max(slopes) > 1.5


def test_exposure_scales_linear_light_uniformly_within_the_stops(tmp_path):
    from hidd.camera.tone import SRGB

    save(tmp_path / "gray.png", np.full((16, 16, 3), 128, dtype=np.uint8))
    dataset = SharpImageDataset(roots=[tmp_path], image_size=8, exposure=1.0)
    linear = SRGB().decode(torch.tensor(128 / 255))
    ratios = []
    for seed in range(30):
        torch.manual_seed(seed)
        item = dataset[0]
        assert torch.allclose(item, item[0, 0, 0])  # one change for the whole crop
        ratios.append(float(SRGB().decode(item[0, 0, 0]) / linear))
    assert 0.5 - 1e-4 <= min(ratios) < 0.8 and 1.25 < max(ratios) <= 2 + 1e-4
    torch.manual_seed(0)
    unchanged = SharpImageDataset(roots=[tmp_path], image_size=8)[0]
    assert torch.allclose(unchanged, torch.tensor(128 / 255))
    save(tmp_path / "noise.png", noise((24, 24, 3)))  # 8-bit levels looked up (cache) or computed (no cache)
    for seed in range(3):
        items = []
        for cache in (True, False):
            torch.manual_seed(seed)
            items.append(SharpImageDataset(roots=[tmp_path], image_size=16, exposure=1.0, scale_jitter=1.4,
                                           cache=cache, only=[tmp_path / "noise.png"])[0])
        assert torch.allclose(*items, atol=1e-6)
