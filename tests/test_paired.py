"""Tests for hidd.paired on tiny fabricated dataset layouts in tmp_path."""

import numpy as np
import pytest
import skimage.io

from hidd.paired import Pair, detect_dataset, find_pairs

REALBLUR_J = "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"


def image(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    skimage.io.imsave(path, np.full((16, 16, 3), value, np.uint8), check_contrast=False)
    return path


def images(root, *relatives):
    return [image(root / relative) for relative in relatives]


def as_tuples(pairs, root):
    return [
        (pair.name, pair.blurred.relative_to(root).as_posix(), pair.sharp and pair.sharp.relative_to(root).as_posix())
        for pair in pairs
    ]


# --- plain folders ---------------------------------------------------------------------------


def test_folder_without_target_lists_every_image(tmp_path):
    images(tmp_path, "b.png", "a.jpg", "scene/c.tif")
    pairs = find_pairs(tmp_path)
    assert as_tuples(pairs, tmp_path) == [
        ("a", "a.jpg", None),
        ("b", "b.png", None),
        ("scene_c", "scene/c.tif", None),
    ]


def test_single_file_input(tmp_path):
    blurred, sharp = images(tmp_path, "in/x.png", "gt/x.png")
    assert find_pairs(blurred) == [Pair("x", blurred, None)]
    assert find_pairs(blurred, target=sharp) == [Pair("x", blurred, sharp)]
    assert find_pairs(blurred, target=tmp_path / "gt") == [Pair("x", blurred, sharp)]


def test_target_folder_matches_by_name_across_extensions_and_subfolders(tmp_path):
    images(tmp_path, "blur/1.jpg", "blur/s/2.png", "sharp/1.png", "sharp/s/2.tif", "sharp/unused.png")
    pairs = find_pairs(tmp_path / "blur", target=tmp_path / "sharp")
    assert as_tuples(pairs, tmp_path) == [
        ("1", "blur/1.jpg", "sharp/1.png"),
        ("s_2", "blur/s/2.png", "sharp/s/2.tif"),
    ]


def test_inputs_without_targets_are_listed_in_one_line(tmp_path):
    images(tmp_path, "blur/1.png", "blur/2.png", "blur/3.png", "sharp/1.png")
    with pytest.raises(ValueError) as caught:
        find_pairs(tmp_path / "blur", target=tmp_path / "sharp")
    assert str(caught.value) == f"{tmp_path / 'sharp'}: no sharp image for 2 of 3 inputs: 2.png, 3.png"


def test_long_lists_of_unmatched_files_are_shortened(tmp_path):
    images(tmp_path, *[f"blur/{index}.png" for index in range(8)], "sharp/0.png")
    with pytest.raises(ValueError, match=r"7 of 8 inputs: 1.png, 2.png, 3.png, 4.png, 5.png and 2 more$"):
        find_pairs(tmp_path / "blur", target=tmp_path / "sharp")


def test_same_stem_with_two_extensions_is_ambiguous(tmp_path):
    images(tmp_path, "in/a.png", "in/a.jpg")
    with pytest.raises(ValueError, match="cannot be told apart"):
        find_pairs(tmp_path / "in")


def test_clashing_names_can_be_skipped_while_the_rest_pair(tmp_path):
    images(tmp_path, "in/a.png", "in/a.jpg", "in/x/y.png", "in/x_y.png", "in/b.png", "in/c.png",
           "sharp/a.png", "sharp/x/y.png", "sharp/x_y.png", "sharp/b.png", "sharp/b.tif", "sharp/c.png")
    skipped = []
    pairs = find_pairs(tmp_path / "in", target=tmp_path / "sharp", skipped=skipped)
    assert as_tuples(pairs, tmp_path) == [("c", "in/c.png", "sharp/c.png")]
    problems = {error.path.relative_to(tmp_path).as_posix(): error.problem for error in skipped}
    assert sorted(problems) == ["in/a.jpg", "in/a.png", "in/b.png", "in/x/y.png", "in/x_y.png"]
    assert "cannot be told apart" in problems["in/a.png"] and "ambiguous" in problems["in/b.png"]
    assert "would both be named 'x_y'" in problems["in/x_y.png"]
    assert all("\n" not in str(error) for error in skipped)


def test_names_stay_unique_when_subfolders_are_flattened(tmp_path):
    images(tmp_path, "in/a/b.png", "in/a_b.png")
    with pytest.raises(ValueError, match="would both be named 'a_b'"):
        find_pairs(tmp_path / "in")


@pytest.mark.parametrize(
    ("setup", "call", "problem"),
    [
        (lambda root: None, lambda root: find_pairs(root / "nope"), "no such file or folder"),
        (lambda root: (root / "empty").mkdir(), lambda root: find_pairs(root / "empty"), "no images found"),
        (lambda root: (root / "x.txt").write_text("x"), lambda root: find_pairs(root / "x.txt"), "not an image file"),
        (
            lambda root: images(root, "in/a.png"),
            lambda root: find_pairs(root / "in", target=root / "gt"),
            "gt: no such folder",
        ),
        (
            lambda root: images(root, "a.png"),
            lambda root: find_pairs(root, dataset="gopro"),
            "dataset must be one of",
        ),
        (
            lambda root: images(root, "a.png"),
            lambda root: find_pairs(root, target=root, dataset="dpdd"),
            "not both",
        ),
    ],
)
def test_plain_errors_are_one_line(tmp_path, setup, call, problem):
    setup(tmp_path)
    with pytest.raises(ValueError, match=problem) as caught:
        call(tmp_path)
    assert "\n" not in str(caught.value)


# --- DPDD --------------------------------------------------------------------------------------


def make_dpdd(root, base="test_c"):
    images(root, *[f"{base}/{side}/{name}.png" for side in ("source", "target") for name in ("1P0A1001", "1P0A1002")])
    images(root, "train_c/target/1P0A0001.png")
    return root


@pytest.mark.parametrize("dataset", ["dpdd", "auto"])
def test_dpdd_test_split_pairs_source_with_target(tmp_path, dataset):
    pairs = find_pairs(make_dpdd(tmp_path), dataset=dataset)
    assert as_tuples(pairs, tmp_path) == [
        ("1P0A1001", "test_c/source/1P0A1001.png", "test_c/target/1P0A1001.png"),
        ("1P0A1002", "test_c/source/1P0A1002.png", "test_c/target/1P0A1002.png"),
    ]


def test_dpdd_folder_with_source_and_target_directly(tmp_path):
    make_dpdd(tmp_path, base="flat")
    assert detect_dataset(tmp_path / "flat") == "dpdd"
    assert [pair.name for pair in find_pairs(tmp_path / "flat", dataset="dpdd")] == ["1P0A1001", "1P0A1002"]


def test_dpdd_layout_errors(tmp_path):
    images(tmp_path, "photos/a.png", "half/test_c/source/a.png")
    with pytest.raises(ValueError, match="not a DPDD folder"):
        find_pairs(tmp_path / "photos", dataset="dpdd")
    with pytest.raises(ValueError, match=r"test_c/target: no such folder"):
        find_pairs(tmp_path / "half", dataset="dpdd")


# --- RealBlur ----------------------------------------------------------------------------------


def make_realblur(root, list_folder="", lines=None):
    scenes = [("scene230", 1), ("scene230", 7), ("scene231", 1)]
    for scene, index in scenes:
        images(root, f"{REALBLUR_J}/{scene}/gt/gt_{index}.png", f"{REALBLUR_J}/{scene}/blur/blur_{index}.png")
    if lines is None:
        lines = [f"{REALBLUR_J}/{s}/gt/gt_{i}.png {REALBLUR_J}/{s}/blur/blur_{i}.png 0.5" for s, i in scenes]
    listing = root / list_folder / "RealBlur_J_test_list.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("\n".join(lines) + "\n\n")
    return listing


@pytest.mark.parametrize("list_folder", ["", "datalist"])
def test_realblur_list_gives_scene_qualified_names(tmp_path, list_folder):
    make_realblur(tmp_path, list_folder)
    pairs = find_pairs(tmp_path, dataset="realblur")
    assert [pair.name for pair in pairs] == ["scene230_blur_1", "scene230_blur_7", "scene231_blur_1"]
    assert pairs[0].blurred == tmp_path / REALBLUR_J / "scene230" / "blur" / "blur_1.png"
    assert pairs[0].sharp == tmp_path / REALBLUR_J / "scene230" / "gt" / "gt_1.png"
    assert detect_dataset(tmp_path) == "realblur"


def test_realblur_list_file_as_input(tmp_path):
    listing = make_realblur(tmp_path, "datalist")
    assert len(find_pairs(listing, dataset="auto")) == 3


def test_realblur_with_both_lists_asks_which(tmp_path):
    make_realblur(tmp_path)
    (tmp_path / "RealBlur_R_test_list.txt").write_text("")
    with pytest.raises(ValueError, match="several RealBlur test lists.*pass the one to use"):
        find_pairs(tmp_path, dataset="realblur")


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ([], "the list is empty"),
        (["only_one_path.png"], "line 1 has one path"),
        ([f"{REALBLUR_J}/scene230/gt/gt_1.png {REALBLUR_J}/scene999/blur/blur_1.png"], "1 listed files are missing"),
    ],
)
def test_realblur_list_problems(tmp_path, lines, problem):
    listing = make_realblur(tmp_path, lines=lines)
    with pytest.raises(ValueError, match=problem) as caught:
        find_pairs(tmp_path, dataset="realblur")
    assert str(caught.value).startswith(str(listing))


def test_realblur_without_list(tmp_path):
    images(tmp_path, "a.png")
    with pytest.raises(ValueError, match="no RealBlur test list"):
        find_pairs(tmp_path, dataset="realblur")


# --- DED -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("blurred_folder", ["image", "blur"])
def test_ded_pairs_by_frame_number(tmp_path, blurred_folder):
    frames = (1, 2, 10)
    images(tmp_path, *[f"{blurred_folder}/image_{i}.jpg" for i in frames], *[f"sharp/sharp_{i}.jpg" for i in frames])
    pairs = find_pairs(tmp_path, dataset="auto")
    assert detect_dataset(tmp_path) == "ded"
    assert [(pair.name, pair.sharp.name) for pair in pairs] == [
        ("image_1", "sharp_1.jpg"),
        ("image_10", "sharp_10.jpg"),
        ("image_2", "sharp_2.jpg"),
    ]


def test_ded_unmatched_frame(tmp_path):
    images(tmp_path, "image/image_1.jpg", "image/image_2.jpg", "sharp/sharp_1.jpg")
    with pytest.raises(ValueError, match="no sharp image for 1 of 2 inputs: image_2.jpg"):
        find_pairs(tmp_path, dataset="ded")


def test_ded_layout_missing(tmp_path):
    images(tmp_path, "image/image_1.jpg")
    with pytest.raises(ValueError, match="not a DED folder"):
        find_pairs(tmp_path, dataset="ded")


# --- detection ----------------------------------------------------------------------------------


def test_auto_on_an_unknown_layout_says_what_it_expected(tmp_path):
    images(tmp_path, "photos/a.png")
    with pytest.raises(ValueError, match="not a known dataset layout.*DPDD.*RealBlur.*DED"):
        find_pairs(tmp_path, dataset="auto")
