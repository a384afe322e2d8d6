"""The Fourier-domain proximal step of a uniform blur (hidd.operators.UniformBlur): 5-smooth frames, OTFs kept per
frame, the free border's fill-in rounds to a tolerance, and each image of a batch solved as it would be alone."""
import pytest
import torch
import torch.nn.functional as F

from hidd import operators
from hidd.camera.noise import NoiseLevelFunction
from hidd.camera.optics import blur, otf
from hidd.camera.psf import LensPSF
from hidd.camera.tone import tone_curve
from hidd.operators import UniformBlur, fast_frame, lens_psfs, pad_to_frame


def _operator(radii, boundary="free", softening=0.0, estimated=False):
    lenses = [LensPSF(r, softening=softening) for r in radii]
    psf, half_widths = lens_psfs(lenses, dtype=torch.float64)
    noise = NoiseLevelFunction.white(tone_curve("none"), torch.full((len(radii),), 0.01, dtype=torch.float64))
    return UniformBlur(psf, noise, torch.tensor(radii), torch.full((len(radii),), 0.01), boundary=boundary,
                       half_widths=half_widths, estimated=lenses if estimated else None)


def _images(count, size, seed=0, channels=3):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(count, channels, size, size, dtype=torch.float64, generator=generator) for _ in range(2))


def _old_free_prox(psf, u0, v, rho, rounds=15):
    """The step as it was: the frame padded by p exactly, the OTF and a circular blur built in every round."""
    p = psf.shape[-1] // 2
    u0_padded = F.pad(u0, (p, p, p, p), mode="reflect")
    observed = torch.zeros_like(u0_padded, dtype=torch.bool)
    observed[..., p:-p, p:-p] = True
    v_padded, u = F.pad(v, (p, p, p, p)), u0_padded
    for _ in range(rounds):
        filled = torch.where(observed, v_padded, blur(u, psf, boundary="circular"))
        k = otf(psf, filled.shape[-2:])
        spectrum = (k.conj() * torch.fft.rfft2(filled) + rho * torch.fft.rfft2(u0_padded)) / (k.abs() ** 2 + rho)
        u = torch.fft.irfft2(spectrum, s=filled.shape[-2:])
    return u[..., p:-p, p:-p]


def _dense_free_prox(psf, u0, v, rho):
    """argmin_u ‖crop(k ∗ u) − v‖² + ρ ‖u − pad(u0)‖² over the frame padded by p, by a dense solve (one channel)."""
    p, n = psf.shape[-1] // 2, u0.shape[-1]
    m = n + 2 * p

    def forward(flat):
        return F.conv2d(flat.reshape(1, 1, m, m), psf.flip(-1, -2).reshape(1, 1, 2 * p + 1, 2 * p + 1)).reshape(-1)

    a = torch.autograd.functional.jacobian(forward, torch.zeros(m * m, dtype=torch.float64))
    start = F.pad(u0.reshape(1, 1, n, n), (p, p, p, p), mode="reflect").reshape(-1)
    u = torch.linalg.solve(a.T @ a + rho * torch.eye(m * m, dtype=torch.float64), a.T @ v.reshape(-1) + rho * start)
    return u.reshape(m, m)[p:p + n, p:p + n]


def test_frames_are_5_smooth_and_hold_the_padded_image():
    for n in list(range(1, 300)) + [1680 + 26, 1120 + 26]:
        side = fast_frame(n, n, 0)[0]
        assert side >= n and side < 1.25 * n + 2
        rest = side
        for factor in (2, 3, 5):
            while rest % factor == 0:
                rest //= factor
        assert rest == 1, (n, side)
    assert fast_frame(256, 256, 3) == (270, 270) and fast_frame(1120, 1680, 13) == (1152, 1728)
    padded = pad_to_frame(torch.ones(1, 1, 4, 6), 2, (10, 12))
    assert padded.shape == (1, 1, 10, 12) and padded[..., 2:6, 2:8].eq(1).all() and padded.sum() == 24


def test_free_prox_equals_the_old_rounds_on_a_5_smooth_frame(monkeypatch):
    """20 + 2·2 = 24 = 2³·3: no padding beyond the ring, so the same 15 rounds give the same solution."""
    monkeypatch.setattr(operators, "FREE_BOUNDARY_TOLERANCE", 0.0)
    op = _operator([2.0])
    assert op.half_widths == [2]
    u0, v = _images(1, 20)
    rho = torch.tensor(1e-3, dtype=torch.float64).reshape(1, 1, 1, 1)
    new = op.solve_linear(u0, v, rho)
    assert torch.allclose(new, _old_free_prox(op.psf, u0, v, rho), atol=1e-10)


def test_free_prox_is_the_dense_minimiser_once_converged(monkeypatch):
    monkeypatch.setattr(operators, "FREE_BOUNDARY_ITERATIONS", 3000)
    monkeypatch.setattr(operators, "FREE_BOUNDARY_TOLERANCE", 1e-13)
    op = _operator([2.0])
    u0, v = _images(1, 13, seed=1, channels=1)  # 13 + 4 = 17 → a frame of 18: one more row and column, unobserved
    for rho in (0.05, 1.0):
        solved = op.solve_linear(u0, v, torch.tensor(rho, dtype=torch.float64).reshape(1, 1, 1, 1))
        assert torch.allclose(solved[0, 0], _dense_free_prox(op.psf[0, 0], u0, v, rho), atol=1e-8)


def test_the_tolerance_stops_early_only_where_converged():
    """A large ρ converges in a few rounds: the step stops there, within the tolerance of all 15 rounds."""
    op = _operator([3.0])
    u0, v = _images(1, 24, seed=2)
    rho = torch.tensor(1.0, dtype=torch.float64).reshape(1, 1, 1, 1)
    ffts = []
    rfft2 = torch.fft.rfft2
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.fft, "rfft2", lambda x, *a, **k: ffts.append(1) or rfft2(x, *a, **k))
        early = op.solve_linear(u0, v, rho)
    assert 3 + 1 <= len(ffts) < 3 + 15  # the OTF, the spectra of u0 and v, then one a round
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(operators, "FREE_BOUNDARY_TOLERANCE", 0.0)
        full = op.solve_linear(u0, v, rho)
    assert (early - full).norm() <= 1e-4 * full.norm()


@pytest.mark.parametrize("boundary", ["free", "reflect"])
def test_each_image_is_solved_as_alone(boundary):
    """Two half-widths and two ρ: each image stops at its own round and has its own frame."""
    op = _operator([2.0, 4.5, 2.0], boundary)
    x0, y = _images(3, 24, seed=3)
    rho = torch.tensor([1e-3, 1.0, 0.3], dtype=torch.float64)
    together = op.prox(x0, y, rho)
    for i in range(3):
        alone = op.select([i]).prox(x0[i:i + 1], y[i:i + 1], rho[i:i + 1])
        assert torch.allclose(together[i:i + 1], alone, atol=1e-12)


def test_otfs_are_kept_per_frame_and_not_shared_by_a_changed_copy():
    op = _operator([2.0, 3.0], softening=0.5, estimated=True)
    x0, y = _images(2, 16, seed=4)
    rho = torch.tensor([0.1, 0.1], dtype=torch.float64)
    first = op.prox(x0, y, rho)
    kept = {key: value for key, value in op._cache.items() if key[0] == "otf"}
    assert len(kept) == 2  # one per half-width group
    assert torch.equal(op.prox(x0, y, rho), first) and all(op._cache[key] is kept[key] for key in kept)
    sharper = op.with_softening(torch.zeros(2, dtype=torch.float64))
    assert sharper is not op and not sharper._cache.get(next(iter(kept)))
    fresh = _operator([2.0, 3.0], softening=0.5)
    fresh.psf = sharper.psf
    fresh.half_widths = sharper.half_widths
    assert torch.allclose(sharper.prox(x0, y, rho), fresh.prox(x0, y, rho), atol=1e-12)
    assert not op.select([1])._cache
