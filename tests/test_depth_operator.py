"""The spatially varying blur's proximal step: exact for the layered model, the closed form for a constant map."""
import pytest
import torch
import torch.nn.functional as F

from conftest import dense_minimiser
import hidd.operators as operators
from hidd.camera.noise import NoiseLevelFunction
from hidd.camera.psf import LensPSF
from hidd.camera.tone import tone_curve
from hidd.operators import DepthVaryingBlur, UniformBlur, _padded_otfs

SIZE = 18


def _operator(radius_map, boundary, tone="none"):
    noise = NoiseLevelFunction.white(tone_curve(tone), torch.tensor([0.01]))
    return DepthVaryingBlur(radius_map, noise, torch.tensor([0.01]), boundary=boundary)


def _dense_prox(op, u0, v, rho, boundary):
    """The minimiser of ‖A u − v‖² + ρ‖u − u0_padded‖² by a dense solve (A built column by column)."""
    radii, weights = op._layers(0, u0)
    n = u0.shape[-1]
    if boundary == "free":
        psfs = [op.psf_of_radius(r, 1).double() for r in radii]
        p = max(k.shape[-1] for k in psfs) // 2
        m = n + 2 * p
        otfs = _padded_otfs(psfs, (m, m))

        def forward(flat):
            layers = torch.fft.irfft2(otfs * torch.fft.rfft2(flat.reshape(1, 1, m, m)), s=(m, m))[..., p:p + n, p:p + n]
            return (weights[0][:, None] * layers).sum(dim=0).reshape(-1)
        start = F.pad(u0, (p, p, p, p), mode="reflect").reshape(-1)
    else:
        p, m = 0, n

        def forward(flat):
            return op.linear(flat.reshape(1, 1, n, n)).reshape(-1)
        start = u0.reshape(-1)
    return dense_minimiser(forward, start, v, rho).reshape(m, m)[p:p + n, p:p + n]


@pytest.mark.parametrize("boundary", ["free", "reflect"])
def test_prox_is_the_exact_minimiser_of_the_layered_model(boundary, monkeypatch):
    monkeypatch.setattr(operators, "CG_ITERATIONS", 400)
    monkeypatch.setattr(operators, "CG_TOLERANCE", 1e-11)
    radius_map = torch.linspace(0, 3, SIZE).repeat(SIZE, 1)[None, None].double()  # a tilted plane: 4 layers
    op = _operator(radius_map, boundary)
    generator = torch.Generator().manual_seed(0)
    u0, v = (torch.rand(1, 1, SIZE, SIZE, dtype=torch.float64, generator=generator) for _ in range(2))
    solved = op.solve_linear(0, u0, v, 0.05)
    assert torch.allclose(solved[0, 0], _dense_prox(op, u0, v, 0.05, boundary), atol=1e-7)


def test_noise_free_data_of_the_model_is_fitted(monkeypatch):
    """Known model, no noise: the step from a wrong start returns an image the model maps onto the data."""
    monkeypatch.setattr(operators, "CG_ITERATIONS", 300)
    monkeypatch.setattr(operators, "CG_TOLERANCE", 1e-12)
    radius_map = torch.linspace(0, 4, 40).repeat(40, 1)[None, None].double()
    op = _operator(radius_map, "reflect")
    sharp = torch.rand(1, 3, 40, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = op.linear(sharp)
    solved = op.solve_linear(0, torch.full_like(sharp, 0.5), y, 1e-4)
    assert (op.linear(solved) - y).abs().max() < 1e-2
    assert (op.linear(torch.full_like(sharp, 0.5)) - y).abs().max() > 0.2  # (the start did not)


def test_a_constant_map_is_the_closed_form():
    radius_map = torch.full((1, 1, 32, 32), 2.5, dtype=torch.float64)
    generator = torch.Generator().manual_seed(2)
    u0, v = (torch.rand(1, 3, 32, 32, dtype=torch.float64, generator=generator) for _ in range(2))
    op = _operator(radius_map, "free")
    uniform = UniformBlur(LensPSF(2.5).kernels(3).double()[None], op.noise, torch.tensor([2.5]), torch.tensor([0.01]))
    rho = torch.tensor(0.1, dtype=torch.float64).reshape(1, 1, 1, 1)
    assert torch.allclose(op.solve_linear(0, u0, v, 0.1), uniform.solve_linear(u0, v, rho), atol=1e-9)


def test_each_image_of_a_batch_is_solved_with_its_own_map():
    maps = torch.stack([torch.linspace(0, 3, 24).repeat(24, 1), torch.full((24, 24), 1.5)])[:, None].double()
    op = _operator(maps, "free", tone="srgb")
    x0, y = (torch.rand(2, 3, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(s)) for s in (3, 4))
    both = op.prox(x0, y, torch.tensor([0.1, 0.2]))
    alone = _operator(maps[1:], "free", tone="srgb").prox(x0[1:], y[1:], torch.tensor([0.2]))
    assert torch.allclose(both[1:], alone, atol=1e-10)


@pytest.mark.parametrize("guarded", [True, False])
def test_a_region_read_in_focus_comes_back_as_it_was(tmp_path, guarded):
    """With a radius map, the result is kept only where the map reads a blur (hidd.stages.select.within_region): the
    part of the photo in focus is returned unchanged, the defocused part is deblurred, with or without the guard."""
    from conftest import make_tiny_checkpoint, synthetic_photo
    from hidd.camera import Camera
    from hidd.deblur import Deblurrer
    from hidd.prior import load_prior

    checkpoint = make_tiny_checkpoint(tmp_path / "tiny.pt")
    off = ["sampler.max_noise_gain=0", "sampler.edge_read_share=0", "sampler.hedge_share=1", "sampler.ringing_share=1",
           "sampler.noisy_retry_lambda=0"]
    settings = ["sampler.radius_map=true", "sampler.num_steps=3"] + ([] if guarded else off)
    deblur = Deblurrer(load_prior(checkpoint, preset="depth", overrides=settings))
    sharp = torch.from_numpy(synthetic_photo(3, 64)).permute(2, 0, 1)[None].float()
    radius_map = torch.zeros(1, 64, 64)
    radius_map[..., 32:] = 3.0  # the right half 3 px out of focus, the left half sharp
    y = Camera(psf=LensPSF(1.0), white_noise=0.01).render(sharp, radius_map=radius_map[0],
                                                          generator=torch.Generator().manual_seed(0))
    out = deblur(y, radius_map=radius_map)
    assert torch.equal(out.images[..., :30], y[..., :30])  # in focus (radius < 2 px, with the ramp's width)
    assert (out.images[..., 34:] - y[..., 34:]).abs().max() > 1e-3  # deblurred where the map reads a blur
