"""Tests of the NCSN++ score network (hidd.models.ncsnpp) and its layers."""
import pytest
import torch
import torch.nn.functional as F

from hidd.models.layers import FIRDownsample, FIRUpsample
from hidd.models.ncsnpp import NCSNpp

TINY = dict(nf=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), image_size=32)


def tiny_model(seed=0, **overrides):
    """A tiny NCSN++ whose weights are all perturbed, so no branch starts (near) zero."""
    torch.manual_seed(seed)
    model = NCSNpp(**{**TINY, **overrides})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def inputs(batch=2, channels=3, height=32, width=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, height, width, generator=g)
    sigma = torch.exp(torch.empty(batch).uniform_(-4, 5, generator=g))
    return x, sigma


def test_reference_model_parameter_count():
    # score_sde's 256 px ncsnpp_continuous configuration.
    with torch.device("meta"):
        model = NCSNpp(channels=3, image_size=256, nf=128, ch_mult=(1, 1, 2, 2, 2, 2, 2),
                       num_res_blocks=2, attn_resolutions=(16,))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 65_574_421
    assert not any(not p.requires_grad for p in model.parameters())
    assert model.noise_embed.fourier.W.numel() == 128  # frozen Fourier frequencies, a buffer
    assert model.size_multiple == 64


@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape(channels):
    model = tiny_model(channels=channels)
    x, sigma = inputs(channels=channels)
    with torch.no_grad():
        out = model(x, sigma)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_non_square_input_and_scalar_sigma():
    model = tiny_model()
    assert model.size_multiple == 4
    x, sigma = inputs(height=32, width=48)
    with torch.no_grad():
        out = model(x, sigma[:1])  # one σ for the whole batch
        ref = model(x, sigma[:1].expand(2))
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref)


def test_wrong_size_raises():
    model = tiny_model()
    x, sigma = inputs(height=30, width=40)
    with pytest.raises(ValueError, match="input size 30x40 is not a multiple of 4"):
        model(x, sigma)


def test_attention_levels_follow_training_resolution():
    model = tiny_model()  # image_size 32: levels have sizes 32, 16, 8; attention at 8 only
    assert [level.attn_blocks is not None for level in model.encoder] == [False, False, True]
    assert [level.attn is not None for level in model.decoder] == [False, False, True]


def test_sigma_conditioning_changes_output():
    model = tiny_model()
    x, _ = inputs(batch=1)
    with torch.no_grad():
        # Undo the 1/σ factor so that only the σ-conditioning can make the two differ.
        a = model(x, torch.tensor([0.5])) * 0.5
        b = model(x, torch.tensor([5.0])) * 5.0
    assert (a - b).abs().max() > 1e-3


def test_scale_by_sigma_divides_by_sigma():
    scaled = tiny_model(scale_by_sigma=True)
    plain = NCSNpp(**TINY, scale_by_sigma=False).eval()
    plain.load_state_dict(scaled.state_dict())
    x, sigma = inputs()
    with torch.no_grad():
        torch.testing.assert_close(scaled(x, sigma) * sigma[:, None, None, None], plain(x, sigma))


def test_centered_flag_rescales_input():
    uncentered = tiny_model(centered=False)
    centered = NCSNpp(**TINY, centered=True).eval()
    centered.load_state_dict(uncentered.state_dict())
    x, sigma = inputs()
    with torch.no_grad():
        torch.testing.assert_close(uncentered(x, sigma), centered(2 * x - 1, sigma))


def test_channels_last_matches_contiguous():
    model = tiny_model()
    x, sigma = inputs(height=32, width=48)
    with torch.no_grad():
        ref = model(x, sigma)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.to(memory_format=torch.channels_last), sigma)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_cpu_autocast_bf16():
    model = tiny_model()
    x, sigma = inputs()
    with torch.no_grad():
        ref = model(x, sigma)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, sigma)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.1 * ref.abs().max()


def test_backward_gives_finite_grads_everywhere():
    model = tiny_model().train()
    x, sigma = inputs()
    model(x, sigma).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert model.noise_embed.fourier.W.grad is None


def test_state_dict_names_and_strict_round_trip():
    model = tiny_model()
    state = model.state_dict()
    assert "noise_embed.fourier.W" in state
    assert "decoder.0.out_conv.weight" in state and "encoder.0.combine.conv.weight" in state
    assert not any(k.endswith("kernel") for k in state)  # FIR kernels are rebuilt, not saved
    other = NCSNpp(**TINY).eval()
    other.load_state_dict(state, strict=True)
    x, sigma = inputs()
    with torch.no_grad():
        torch.testing.assert_close(other(x, sigma), model(x, sigma))


def upfirdn2d_reference(x, taps, up=1, down=1, pad=(0, 0)):
    """Literal upfirdn2d: zero-insert, zero-pad, convolve (flipped kernel), decimate."""
    k = torch.outer(torch.tensor(taps, dtype=x.dtype), torch.tensor(taps, dtype=x.dtype))
    k = k / k.sum() * up**2
    b, c, h, w = x.shape
    z = torch.zeros(b, c, h * up, w * up, dtype=x.dtype)
    z[:, :, ::up, ::up] = x
    z = F.pad(z, (pad[0], pad[1], pad[0], pad[1]))
    out = F.conv2d(z, k.flip(0, 1).expand(c, 1, -1, -1), groups=c)
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize("taps", [(1, 3, 3, 1), (1, 2, 5, 3), (1, 1)])
def test_fir_resampling_matches_upfirdn2d(taps):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 12, dtype=torch.float64)
    p = len(taps) - 2
    down = FIRDownsample(taps).double()(x)
    up = FIRUpsample(taps).double()(x)
    torch.testing.assert_close(down, upfirdn2d_reference(x, taps, down=2, pad=((p + 1) // 2, p // 2)))
    torch.testing.assert_close(up, upfirdn2d_reference(x, taps, up=2, pad=((p + 1) // 2 + 1, p // 2)))
    assert down.shape[-2:] == (4, 6) and up.shape[-2:] == (16, 24)


def test_odd_fir_kernel_rejected():
    with pytest.raises(ValueError, match="even length"):
        FIRDownsample((1, 2, 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_autocast_channels_last():
    model = tiny_model().cuda().to(memory_format=torch.channels_last)
    x, sigma = inputs(height=32, width=48)
    x, sigma = x.cuda().to(memory_format=torch.channels_last), sigma.cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x, sigma)
    assert out.dtype == torch.float32 and out.shape == x.shape
    out.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
