"""--compile (hidd.models.compile): the plumbing, traced by dynamo with a recording eager backend (no kernels built):
the same output as the uncompiled network, dynamic shapes for photos, static ones for small images, one-line errors."""
import numpy as np
import pytest
import torch

from conftest import load_script, make_tiny_checkpoint
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.deblur import Deblurrer
from hidd.imageio import read_image, write_image
from hidd.models import compile as compile_module
from hidd.models.compile import BACKEND_ENV, CompiledNetwork, check_compile
from hidd.prior import load_prior

GRAPHS = []  # one entry per graph the recording backend was given: whether it has symbolic sizes (dynamic shapes)


@torch._dynamo.register_backend(name="hidd_test_recording")
def recording_backend(gm, example_inputs):
    GRAPHS.append(any(isinstance(value, torch.SymInt) for value in example_inputs))  # (sizes come as inputs)
    return gm.forward


@pytest.fixture(autouse=True)
def traced_only(monkeypatch, one_thread):
    """One thread, and torch.compile through the recording backend, with dynamo's caches reset around each test."""
    monkeypatch.setenv(BACKEND_ENV, "hidd_test_recording")
    GRAPHS.clear()
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", "model.init_scale=1.0")


def test_compiled_score_equals_the_network_static_then_dynamic(tiny, monkeypatch):
    monkeypatch.setattr(compile_module, "DYNAMIC_PIXELS", 40 * 40)  # so a 48x64 image counts as a full-size photo
    prior = load_prior(tiny, preset="fast")
    plain = Deblurrer(prior)
    compiled = Deblurrer(prior, compile="default")
    assert isinstance(compiled.network, CompiledNetwork) and plain.network is prior.model
    generator = torch.Generator().manual_seed(0)
    for shape in [(2, 3, 32, 32), (2, 3, 32, 32), (1, 3, 48, 64), (1, 3, 64, 56)]:
        x, sigma = torch.rand(shape, generator=generator), torch.full((shape[0],), 2.0)
        assert torch.allclose(compiled.score(x, sigma), plain.score(x, sigma), atol=1e-6)
    # 32² twice: one static graph; then both photos through one dynamic graph (no recompilation for the second)
    assert GRAPHS == [False, True]


def test_bad_modes_are_one_line_errors():
    with pytest.raises(ValueError, match="compile 'fast': choose from off, default, max-autotune, reduce-overhead"):
        check_compile("fast", "cpu")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        check_compile("reduce-overhead", "cpu")
    check_compile("reduce-overhead", "cuda")  # (checked, not run)


def test_cli_compile_option(tiny, tmp_path, capsys):
    write_image(tmp_path / "in" / "photo.png", np.random.default_rng(0).uniform(0, 1, (40, 48, 3)).astype(np.float32))
    common = ["--input", str(tmp_path / "in"), "--checkpoint", str(tiny), "--preset", "ablation-pdc",
              "--set", "sampler.num_steps=2"]
    reconstruct_main([*common, "--output", str(tmp_path / "plain")])
    reconstruct_main([*common, "--output", str(tmp_path / "compiled"), "--compile", "default"])
    assert GRAPHS and not any(GRAPHS)  # traced, statically (a small photo)
    plain, compiled = (read_image(tmp_path / name / "photo.png").pixels for name in ("plain", "compiled"))
    assert np.array_equal(plain, compiled)
    assert "compile: default" in (tmp_path / "compiled" / "run.yaml").read_text()
    for bad in (["--compile", "reduce-overhead"], ["--compile", "default", "--method", "dncnn"]):
        with pytest.raises(SystemExit) as exit_:
            reconstruct_main([*common, "--output", str(tmp_path / "bad"), *bad])
        assert exit_.value.code == 2
    assert "needs a CUDA device" in capsys.readouterr().err


def test_bench_speed_modes_name_precision_norm_and_compile():
    bench = load_script("bench_speed")
    assert bench.parse_mode("bf16+split+reduce-overhead", "auto", "off") == \
        {"mode": "bf16", "norm": "split", "compile": "reduce-overhead"}
    assert bench.parse_mode("fp32", "native", "default") == {"mode": "fp32", "norm": "native", "compile": "default"}
    for bad in ("bf32", "fp32+fused", "fp32+split+default+native"):
        with pytest.raises(SystemExit, match="PRECISION"):
            bench.parse_mode(bad, "auto", "off")
