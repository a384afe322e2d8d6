"""Black-and-white photos saved as RGB come back gray (hidd.colour); colour photos keep their colour."""
import numpy as np
import pytest
import torch

from conftest import read_csv, synthetic_photo
from hidd.camera import Camera, LensPSF, tone_curve
from hidd.camera.noise import PoissonGaussian
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.colour import chroma_rms, colourless, gray
from hidd.deblur import Deblurrer
from hidd.imageio import read_image, write_image
from hidd.prior import load_prior

SRGB = tone_curve("srgb")


def scene(colour: bool, size: int = 64) -> torch.Tensor:
    image = torch.from_numpy(synthetic_photo(3, size)).permute(2, 0, 1)[None]
    return image if colour else image.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1).contiguous()


def photo_of(sharp: torch.Tensor, seed: int = 0, read: float = 0.01) -> torch.Tensor:
    """A camera photo: a 2.5 px disk in linear light, channel-independent sensor noise, 8 bits."""
    camera = Camera(psf=LensPSF(2.5), noise=PoissonGaussian(read=read))
    return camera.render(sharp, generator=torch.Generator().manual_seed(seed))


def test_a_gray_scene_with_channel_noise_reads_colourless_and_a_colour_one_does_not():
    gray_photo, colour_photo = photo_of(scene(False)), photo_of(scene(True))
    assert 0 < chroma_rms(gray_photo)[0] < 0.02  # noise makes the channels differ
    exact = gray_photo.mean(dim=1, keepdim=True).expand_as(gray_photo)  # channels equal: no noise to measure
    found, noise = colourless(torch.cat([gray_photo, colour_photo, exact]), SRGB)
    assert found.tolist() == [True, False, True] and noise[:2].isfinite().all() and noise[2].isnan()


def test_the_gray_projection_is_the_channel_mean_and_leaves_gray_pixels_exact():
    images = torch.tensor([[[[0.1]], [[0.2]], [[0.6]]], [[[0.3]], [[0.3]], [[0.3]]]])  # (2, 3, 1, 1)
    projected = gray(images)
    assert torch.allclose(projected[0, :, 0, 0], torch.full((3,), 0.3)) and torch.equal(projected[1], images[1])
    assert torch.equal(gray(images, torch.tensor([False, True])), images)


@pytest.mark.parametrize("max_noise_gain", ["2.0", "1e-6"])  # the guard keeping the result, or backing it off
def test_a_black_and_white_photo_comes_back_gray_and_a_colour_one_in_colour(tiny_checkpoint, max_noise_gain):
    deblur = Deblurrer(load_prior(tiny_checkpoint, preset="fast", overrides=[
        "sampler.num_steps=2", "sampler.noisy_retry_lambda=0", f"sampler.max_noise_gain={max_noise_gain}"]))
    y = torch.cat([photo_of(scene(False)), photo_of(scene(True))])
    result = deblur(y)
    assert result.gray.tolist() == [True, False]
    assert chroma_rms(result.images[:1])[0] == 0  # every pixel gray, blended with the photo or not
    assert chroma_rms(result.images[1:])[0] > 0.05


def test_the_gray_test_can_be_turned_off(tiny_checkpoint):
    deblur = Deblurrer(load_prior(tiny_checkpoint, preset="fast", overrides=[
        "sampler.num_steps=2", "sampler.gray_photos=false"]))
    result = deblur(photo_of(scene(False)))
    assert result.gray is None and chroma_rms(result.images)[0] > 0


def test_reconstruct_writes_a_black_and_white_photo_gray_in_the_channels_it_came_in(tiny_checkpoint, tmp_path,
                                                                                  capsys):
    write_image(tmp_path / "in" / "bw.png", photo_of(scene(False))[0].permute(1, 2, 0).numpy())
    write_image(tmp_path / "in" / "one_channel.png", photo_of(scene(False))[0, :1].permute(1, 2, 0).numpy())
    reconstruct_main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--checkpoint",
                      str(tiny_checkpoint), "--set", "sampler.num_steps=2"])
    assert read_image(tmp_path / "out" / "one_channel.png").pixels.shape[2] == 1
    written = read_image(tmp_path / "out" / "bw.png").pixels
    assert written.shape[2] == 3 and np.array_equal(written[..., 0], written[..., 1])
    assert np.array_equal(written[..., 1], written[..., 2])
    err = capsys.readouterr().err
    assert "bw.png: its colour is at its noise level (a black-and-white photo), so its result was made gray" in err
    assert "one_channel.png: its colour" not in err  # a 1-channel photo comes back as one channel: nothing to say
    assert [row["name"] for row in read_csv(tmp_path / "out" / "metrics.csv")] == ["bw", "one_channel"]
