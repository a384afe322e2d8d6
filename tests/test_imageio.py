"""Tests for hidd.imageio on tiny images written into tmp_path."""

import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import skimage.io

from hidd.imageio import ImageError, list_images, read_image, to_gray, to_rgb, write_image


def random_uint8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save(path, array):
    skimage.io.imsave(path, array, check_contrast=False)
    return path


def photo_jpeg(path):
    """A JPEG large enough that cutting it in half removes image data, not just headers."""
    smooth = np.linspace(0, 255, 96 * 96 * 3).reshape(96, 96, 3).astype(np.uint8)
    return save(path, smooth)


# --- reading ---------------------------------------------------------------------------------


def test_reads_8bit_rgb_png_exactly(tmp_path):
    stored = random_uint8((5, 7, 3))
    image = read_image(save(tmp_path / "a.png", stored))
    assert image.pixels.dtype == np.float32
    assert image.pixels.shape == (5, 7, 3)
    assert image.bit_depth == 8
    assert image.path == tmp_path / "a.png"
    np.testing.assert_array_equal(np.rint(image.pixels * 255).astype(np.uint8), stored)


def test_reads_16bit_rgb_png_without_truncating_to_8_bits(tmp_path):
    samples = np.random.default_rng(1).integers(0, 65536, (4, 6, 3)).astype(np.uint16)
    write_image(tmp_path / "deep.png", samples / 65535, bit_depth=16)
    image = read_image(tmp_path / "deep.png")
    assert image.bit_depth == 16
    np.testing.assert_array_equal(np.rint(image.pixels * 65535).astype(np.uint16), samples)


def test_16bit_png_written_here_is_readable_by_pillow(tmp_path):
    # An independent decoder checks that the hand-written 16-bit encoder produces valid PNG.
    samples = np.random.default_rng(2).integers(0, 65536, (4, 6)).astype(np.uint16)
    write_image(tmp_path / "gray16.png", samples / 65535, bit_depth=16)
    np.testing.assert_array_equal(skimage.io.imread(tmp_path / "gray16.png"), samples)


@pytest.mark.parametrize("name", ["a.tif", "a.TIFF", "a.bmp", "a.jpg"])
def test_reads_tiff_bmp_jpeg(tmp_path, name):
    stored = np.full((8, 8, 3), 100, np.uint8)
    image = read_image(save(tmp_path / name, stored))
    assert image.pixels.shape == (8, 8, 3)
    assert image.bit_depth == 8
    np.testing.assert_allclose(image.pixels, 100 / 255, atol=2 / 255)  # JPEG is lossy


def test_reads_16bit_tiff(tmp_path):
    stored = np.array([[0, 1000, 65535]], np.uint16)
    image = read_image(save(tmp_path / "a.tif", stored))
    assert image.bit_depth == 16
    np.testing.assert_allclose(image.pixels[..., 0], stored / 65535, rtol=1e-6)


def test_float_tiff_in_unit_range_is_accepted_as_16_bit(tmp_path):
    stored = np.array([[0.0, 0.25, 1.0]], np.float32)
    image = read_image(save(tmp_path / "f.tif", stored))
    assert image.bit_depth == 16
    np.testing.assert_array_equal(image.pixels[..., 0], stored)


def test_float_tiff_outside_unit_range_is_refused(tmp_path):
    path = save(tmp_path / "hdr.tif", np.array([[0.0, 4.5]], np.float32))
    with pytest.raises(ImageError, match=r"outside \[0, 1\].*max 4\.5"):
        read_image(path)


@pytest.mark.parametrize("bad, counts", [(np.nan, "1 NaN and 0 infinite"), (np.inf, "0 NaN and 1 infinite")])
def test_float_tiff_with_nan_or_infinity_says_so(tmp_path, bad, counts):
    path = save(tmp_path / "bad.tif", np.array([[0.0, bad, 1.0]], np.float32))
    with pytest.raises(ImageError, match=counts) as e:
        read_image(path)
    assert "outside" not in str(e.value)  # not the misleading "outside [0, 1] (min 0, max 1)"


def test_unsupported_pixel_type_is_refused(tmp_path):
    path = save(tmp_path / "int32.tif", np.array([[1, 2]], np.int32))
    with pytest.raises(ImageError, match="unsupported pixel type int32"):
        read_image(path)


def test_multi_page_tiff_is_refused(tmp_path):
    path = save(tmp_path / "stack.tif", random_uint8((3, 8, 8, 3)))
    with pytest.raises(ImageError, match="multi-page"):
        read_image(path)


def test_gray_is_returned_with_one_channel(tmp_path):
    image = read_image(save(tmp_path / "g.png", random_uint8((4, 4))))
    assert image.pixels.shape == (4, 4, 1)


def test_a_gray_palette_png_is_gray_and_a_colour_palette_png_rgb(tmp_path):
    values = random_uint8((6, 5))
    gray = PIL.Image.fromarray(values, "L").convert("P")  # a palette of 256 grays
    gray.save(tmp_path / "gray_palette.png")
    image = read_image(tmp_path / "gray_palette.png")
    assert image.pixels.shape == (6, 5, 1)
    np.testing.assert_array_equal(np.rint(image.pixels[..., 0] * 255).astype(np.uint8), values)
    colour = PIL.Image.fromarray(random_uint8((6, 5, 3))).quantize(8)
    colour.save(tmp_path / "colour_palette.png")
    assert read_image(tmp_path / "colour_palette.png").pixels.shape == (6, 5, 3)
    gray.save(tmp_path / "gray_palette_alpha.png", transparency=int(values[0, 0]))  # a pixel uses it: alpha
    with pytest.raises(ImageError, match=r"alpha channel \(gray \+ alpha\)"):
        read_image(tmp_path / "gray_palette_alpha.png")
    colour.save(tmp_path / "colour_palette_alpha.png", transparency=int(np.asarray(colour)[0, 0]))
    with pytest.raises(ImageError, match=r"alpha channel \(RGBA\)"):
        read_image(tmp_path / "colour_palette_alpha.png")
    unused = int(np.setdiff1d(np.arange(256), np.asarray(gray)).min())  # an entry no pixel has
    gray.save(tmp_path / "unused_transparent.png", transparency=unused)
    assert read_image(tmp_path / "unused_transparent.png").pixels.shape == (6, 5, 1)  # opaque: no alpha


@pytest.mark.parametrize("suffix", [".tif", ".bmp"])
def test_palette_tiffs_and_bmps_read_as_their_colours(tmp_path, suffix):
    values = random_uint8((6, 5))
    inverted = PIL.Image.fromarray(values, "P")
    inverted.putpalette([255 - i for i in range(256) for _ in range(3)])  # gray, but not the indices
    inverted.save(tmp_path / f"gray{suffix}")
    image = read_image(tmp_path / f"gray{suffix}")
    assert image.pixels.shape == (6, 5, 1)
    np.testing.assert_array_equal(np.rint(image.pixels[..., 0] * 255).astype(np.uint8), 255 - values)
    colour = PIL.Image.fromarray(random_uint8((6, 5, 3))).quantize(8)
    colour.save(tmp_path / f"colour{suffix}")
    expected = np.asarray(colour.convert("RGB"))
    np.testing.assert_array_equal(np.rint(read_image(tmp_path / f"colour{suffix}").pixels * 255).astype(np.uint8),
                                  expected)


def test_an_animated_palette_png_is_refused_as_multi_frame(tmp_path):
    frames = [PIL.Image.fromarray(random_uint8((6, 5), seed), "L").convert("P") for seed in (1, 2)]
    frames[0].save(tmp_path / "animated.png", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="multi-page"):
        read_image(tmp_path / "animated.png")


def test_a_bilevel_png_reads_as_gray_zeros_and_ones(tmp_path):
    bits = random_uint8((5, 7)) > 127
    PIL.Image.fromarray(bits).convert("1").save(tmp_path / "bilevel.png")
    image = read_image(tmp_path / "bilevel.png")
    assert image.pixels.shape == (5, 7, 1)
    np.testing.assert_array_equal(image.pixels[..., 0], bits.astype(np.float32))


def test_channel_mismatch_is_an_error_not_a_silent_conversion(tmp_path):
    gray = save(tmp_path / "g.png", random_uint8((4, 4)))
    rgb = save(tmp_path / "c.png", random_uint8((4, 4, 3)))
    with pytest.raises(ImageError, match=r"is grayscale \(1 channel\) but 3 channels are needed"):
        read_image(gray, channels=3)
    with pytest.raises(ImageError, match=r"is RGB \(3 channels\) but 1 channel is needed"):
        read_image(rgb, channels=1)
    assert read_image(gray, channels=1).pixels.shape == (4, 4, 1)


def test_rgba_is_refused_unless_alpha_is_allowed(tmp_path):
    rgb = random_uint8((4, 4, 3))
    path = save(tmp_path / "rgba.png", np.dstack([rgb, np.full((4, 4), 7, np.uint8)]))
    with pytest.raises(ImageError) as refused:
        read_image(path)
    assert str(refused.value) == f"{path}: has an alpha channel (RGBA); flatten it first"
    dropped = read_image(path, allow_alpha=True)
    np.testing.assert_array_equal(np.rint(dropped.pixels * 255).astype(np.uint8), rgb)


def test_gray_plus_alpha_is_refused(tmp_path):
    path = save(tmp_path / "la.png", random_uint8((4, 4, 2)))
    with pytest.raises(ImageError, match="has an alpha channel"):
        read_image(path)
    # Pillow expands gray + alpha to RGBA; either way no alpha is left.
    assert read_image(path, allow_alpha=True).pixels.shape[2] in (1, 3)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_truncated_png_is_an_error(tmp_path, bit_depth):
    write_image(tmp_path / "full.png", random_uint8((64, 64, 3)) / 255, bit_depth=bit_depth)
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cannot be decoded"):
        read_image(tmp_path / "cut.png")


def test_jpeg_cut_in_half_is_an_error_not_a_partial_image(tmp_path):
    data = photo_jpeg(tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        read_image(tmp_path / "cut.jpg")


def test_file_problems_give_one_line_errors_naming_the_file(tmp_path):
    (tmp_path / "notes.png").write_text("not an image\nsecond line\n")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    expected = {
        "notes.png": "cannot be decoded: its contents are not a PNG, JPEG, TIFF or BMP image",
        "empty.jpg": "is empty",
        "folder.png": "is not a file",
        "missing.png": "file not found",
    }
    for name, problem in expected.items():
        with pytest.raises(ImageError) as caught:
            read_image(tmp_path / name)
        message = str(caught.value)
        assert message.startswith(f"{tmp_path / name}: ")
        assert problem in message
        assert "\n" not in message


# --- conversion ------------------------------------------------------------------------------


def test_to_gray_uses_luminance_weights_and_to_rgb_replicates():
    red = np.zeros((2, 2, 3), np.float32)
    red[..., 0] = 1.0
    gray = to_gray(red)
    assert gray.shape == (2, 2, 1)
    assert gray.dtype == np.float32
    np.testing.assert_allclose(gray, 0.2125, atol=1e-4)
    rgb = to_rgb(gray)
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[..., 1], gray[..., 0])


# --- writing ---------------------------------------------------------------------------------


def test_write_clips_rounds_and_creates_folders(tmp_path):
    path = tmp_path / "deep" / "er" / "out.png"
    write_image(path, np.array([[-0.2, 0.5, 0.499, 1.3]], np.float32))
    stored = skimage.io.imread(path)
    np.testing.assert_array_equal(stored, [[0, 128, 127, 255]])
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_write_replaces_an_existing_file(tmp_path):
    path = tmp_path / "out.png"
    write_image(path, np.zeros((3, 3, 3)))
    write_image(path, np.ones((2, 2, 3)), bit_depth=16)
    assert read_image(path).pixels.shape == (2, 2, 3)
    assert read_image(path).bit_depth == 16
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    ("name", "pixels", "problem"),
    [
        ("out.png", np.zeros((2, 2, 4)), "shape"),
        ("out.png", np.full((2, 2), np.nan), "NaN"),
        ("out.jpg", np.zeros((2, 2)), ".png"),
    ],
)
def test_write_refuses_bad_requests_without_leaving_files(tmp_path, name, pixels, problem):
    with pytest.raises(ValueError, match=problem):
        write_image(tmp_path / name, pixels)
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_other_bit_depths(tmp_path):
    with pytest.raises(ValueError, match="bit_depth"):
        write_image(tmp_path / "out.png", np.zeros((2, 2)), bit_depth=12)


# --- listing ---------------------------------------------------------------------------------


def test_list_images_is_recursive_sorted_and_skips_hidden_and_other_files(tmp_path):
    tiny = random_uint8((2, 2, 3))
    for relative in ["b.png", "a/c.JPG", "a/d.tiff", "e.Bmp", ".hidden.png", ".cache/x.png", "notes.txt"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        if relative.endswith(".txt"):
            (tmp_path / relative).write_text("x")
        else:
            save(tmp_path / relative, tiny)
    found = [path.relative_to(tmp_path).as_posix() for path in list_images(tmp_path)]
    assert found == ["a/c.JPG", "a/d.tiff", "b.png", "e.Bmp"]


def test_list_images_visits_each_real_folder_once_through_symlink_loops(tmp_path, bounded_walks):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    save(root / "a.png", random_uint8((2, 2, 3)))
    save(root / "sub" / "b.png", random_uint8((2, 2, 3)))
    (root / "self").symlink_to(".")  # self -> .
    (root / "sub" / "up").symlink_to("..")  # sub/up -> ..: with self, an endless tree of paths
    (root / "zlinked").symlink_to(root / "sub")  # a linked folder is still followed once (reached first as sub)
    found = [path.relative_to(root).as_posix() for path in list_images(root)]
    assert found == ["a.png", "sub/b.png"]


def test_a_link_to_its_own_folder_lists_nothing_twice(tmp_path):
    save(tmp_path / "a.png", random_uint8((2, 2, 3)))
    (tmp_path / "self").symlink_to(".")  # alone, this gave 41 copies of every image
    assert list_images(tmp_path) == [tmp_path / "a.png"]


def test_list_images_follows_a_linked_dataset_folder(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "in").mkdir()
    save(tmp_path / "elsewhere" / "c.png", random_uint8((2, 2, 3)))
    (tmp_path / "in" / "linked").symlink_to(tmp_path / "elsewhere")
    assert [p.relative_to(tmp_path / "in").as_posix() for p in list_images(tmp_path / "in")] == ["linked/c.png"]


def test_list_images_of_a_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        list_images(tmp_path / "nope")


# --- EXIF orientation ------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(tmp_path, orientation):
    stored = random_uint8((5, 7, 3), seed=orientation)
    exif = PIL.Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"  # lossless, so that the comparison is exact
    PIL.Image.fromarray(stored).save(path, exif=exif)
    expected = np.asarray(PIL.ImageOps.exif_transpose(PIL.Image.open(path)))
    got = np.rint(read_image(path).pixels * 255).astype(np.uint8)
    np.testing.assert_array_equal(got, expected)


def test_portrait_phone_jpeg_comes_out_upright(tmp_path):
    # A phone stores a portrait as a landscape 96 wide × 48 high, with orientation 6 (rotate 90° clockwise).
    landscape = np.zeros((48, 96, 3), np.uint8)
    landscape[:, :48] = 255  # left half white: after the clockwise turn, the top half is white
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    PIL.Image.fromarray(landscape).save(tmp_path / "portrait.jpg", exif=exif, quality=95)
    pixels = read_image(tmp_path / "portrait.jpg").pixels
    assert pixels.shape == (96, 48, 3)  # 48 wide, 96 high, as a viewer shows it
    assert pixels[:40].mean() > 0.9 and pixels[56:].mean() < 0.1
