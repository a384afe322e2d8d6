"""The split-reduction GroupNorm (hidd.models.norm): equal to nn.GroupNorm, stable, loads its checkpoints, chosen per
device."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import load_script, make_tiny_checkpoint
from hidd.models.norm import GroupNorm, resolve_norm, split_group_norm, use_norm
from hidd.precision import InferencePrecision
from hidd.prior import load_prior

pytestmark = pytest.mark.usefixtures("one_thread")  # (conftest)


SHAPES = [((2, 32, 12, 10), 8), ((1, 128, 4, 4), 32), ((3, 16, 1, 1), 4), ((1, 64, 7, 3), 16)]


def norms(channels: int, groups: int) -> tuple[nn.GroupNorm, GroupNorm]:
    """A native nn.GroupNorm with random affine parameters, and a split GroupNorm loaded strictly from it."""
    native = nn.GroupNorm(groups, channels, eps=1e-6)
    nn.init.normal_(native.weight)
    nn.init.normal_(native.bias)
    split = GroupNorm(groups, channels, eps=1e-6, impl="split")
    split.load_state_dict(native.state_dict(), strict=True)
    return native, split


@pytest.mark.parametrize("shape,groups", SHAPES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_split_equals_native_in_fp32(shape, groups, channels_last):
    torch.manual_seed(0)
    x = torch.randn(shape) * 2 + 5
    native, split = norms(shape[1], groups)
    xi = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    out = split(xi)
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last) == xi.is_contiguous(
        memory_format=torch.channels_last)
    assert (out - native(x)).abs().max() < 1e-5


@pytest.mark.parametrize("shape,groups", SHAPES[:2])
def test_split_under_bf16_autocast_keeps_its_statistics_in_fp32(shape, groups):
    """Under autocast a bf16 activation is normalised as nn.GroupNorm does it under CUDA autocast: in fp32."""
    torch.manual_seed(1)
    x = (torch.randn(shape) * 3 - 2).bfloat16().contiguous(memory_format=torch.channels_last)
    native, split = norms(shape[1], groups)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = split(x)
    assert out.dtype == torch.float32
    assert (out - native(x.float())).abs().max() < 1e-5


def test_split_is_stable_far_from_zero():
    """A mean 10⁴ times the spread: the combined statistics stay exact where E[x²] − E[x]² would cancel."""
    torch.manual_seed(2)
    x = torch.randn(1, 16, 32, 24) * 0.5 + 5000.0
    reference = F.group_norm(x.double(), 4, eps=1e-6)
    out = split_group_norm(x, 4, None, None, 1e-6)
    assert (out.double() - reference).abs().max() < 2e-3
    flat = x.reshape(1, 4, -1)
    naive_var = flat.square().mean(-1) - flat.mean(-1).square()  # what a plain-sums reduction would give
    assert (naive_var - flat.double().var(-1, correction=0)).abs().max() > 0.05  # (so the test can fail)


def test_checkpoint_keys_and_strict_load():
    native, split = norms(32, 8)
    assert list(split.state_dict()) == list(native.state_dict()) == ["weight", "bias"]
    prior = load_prior(None, preset="fast")  # the shipped checkpoint, loaded strictly into GroupNorms
    assert sum(isinstance(m, GroupNorm) for m in prior.model.modules()) > 0
    with pytest.raises(ValueError, match="choose from"):
        GroupNorm(4, 16, impl="fast")


def test_norm_choice_by_device_and_bad_names():
    assert resolve_norm("auto", "cuda") == "split" and resolve_norm("auto", "cpu") == "native"
    assert resolve_norm("split", "cpu") == "split"
    with pytest.raises(ValueError, match="norm 'fused': choose from auto, native, split"):
        resolve_norm("fused", "cpu")
    with pytest.raises(ValueError, match="choose from"):
        InferencePrecision("fp32", "cpu", norm="fused")


def test_whole_network_split_equals_native(tmp_path):
    """The tiny network with every GroupNorm split gives the native output; on a CPU 'auto' keeps PyTorch's kernel."""
    prior = load_prior(make_tiny_checkpoint(tmp_path / "tiny.pt", "model.init_scale=1.0"), preset="fast")
    x, sigma = torch.rand(2, 3, 32, 24, generator=torch.Generator().manual_seed(0)), torch.tensor([0.5, 3.0])
    network = InferencePrecision("fp32", "cpu").prepare(prior.model)
    assert {m.impl for m in prior.model.modules() if isinstance(m, GroupNorm)} == {"native"}
    with torch.no_grad():
        native = network(x, sigma)
        split = use_norm(prior.model, "split", "cpu")(x, sigma)
    assert {m.impl for m in prior.model.modules() if isinstance(m, GroupNorm)} == {"split"}
    assert (split - native).abs().max() <= 1e-4 * native.abs().max()


def test_bench_groupnorm_finds_the_network_shapes():
    """bench_groupnorm times the shapes one evaluation normalises: found on fake tensors, with their counts."""
    model = load_prior(None, preset="fast").model
    shapes = load_script("bench_groupnorm").norm_shapes(model, 1120, 1680)
    assert sum(shapes.values()) == sum(isinstance(m, GroupNorm) for m in model.modules())
    assert shapes[(32, 8, 1120, 1680)] >= 1 and max(h for _, _, h, _ in shapes) == 1120
