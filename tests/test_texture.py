"""Where a photo holds texture (hidd.blind.texture): the half of its pixels with the most gradient energy."""
import torch

from hidd.blind.texture import gradient_energy, textured


def half_textured(seed: int, size: int = 48) -> torch.Tensor:
    """Noise texture on the left half, a flat grey on the right."""
    image = torch.full((size, size), 0.5, dtype=torch.float64)
    image[:, :size // 2] += 0.2 * (torch.rand(size, size // 2, generator=torch.Generator().manual_seed(seed),
                                              dtype=torch.float64) - 0.5)
    return image


def test_the_textured_half_is_half_of_each_image_and_lies_where_the_texture_is():
    image = half_textured(0)
    mask = textured(image)
    assert mask.shape == image.shape and int(mask.sum()) == image.numel() // 2
    assert float(mask[:, :16].float().mean()) >= 0.95 and float(mask[:, 32:].float().mean()) == 0.0
    assert float(gradient_energy(image)[:, 40:].max()) < 1e-12  # a flat region holds no energy


def test_each_image_of_a_batch_is_split_at_its_own_median():
    weak, other = half_textured(1), half_textured(2).flip(-1)
    both = textured(torch.stack([weak, other]))
    assert torch.equal(both[0], textured(weak)) and torch.equal(both[1], textured(other))
    assert float(both[1][:, 32:].float().mean()) >= 0.95  # the other's texture is on its right
    assert torch.equal(textured(0.5 + 10 * (weak - 0.5)), both[0])  # contrast does not move the split
