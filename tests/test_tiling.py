"""Tiled score evaluation: exactness, windows, seams, batching, memory bound, CLI."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_tiny_checkpoint
from hidd.cli.reconstruct import main as reconstruct_main
from hidd.deblur import Deblurrer
from hidd.imageio import read_image, write_image
from hidd.memory import activation_bytes_per_pixel
from hidd.precision import InferencePrecision, resolve_precision
from hidd.prior import load_prior
from hidd.tiling import ScoreTiler, TiledScore, TilingConfig, blend_windows, tile_starts

REPO = Path(__file__).resolve().parent.parent
FEW_STEPS = ["sampler.num_steps=4"]  # with ablation-pdc: predictor + pull, 1 NFE per step


pytestmark = pytest.mark.usefixtures("one_thread")  # (conftest)


@pytest.fixture(scope="module")
def random_tiny(tmp_path_factory):
    """An untrained tiny model with non-zero output convs, so its score has structure (and border effects)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", "model.init_scale=1.0")


def smooth_image(h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([0.3 + 0.4 * xx, 0.5 + 0.2 * yy, torch.full_like(xx, 0.4)])[None]


def tiler(tile, overlap, *, multiple=4, tile_batch=4, budget=2**40):
    return ScoreTiler(TilingConfig(tile=tile, overlap=overlap, tile_batch=tile_batch), multiple=multiple,
                      bytes_per_pixel=1000.0, budget_bytes=budget)


@pytest.mark.parametrize("tile,overlap", [(16, 0), (16, 4), (32, 8), (32, 16), (64, 32), (24, 16)])
def test_windows_sum_to_one_and_spare_the_inner_edges(tile, overlap):
    for length in range(4, 300, 4):
        t = min(tile, length)
        starts = tile_starts(length, t, overlap)
        assert starts[0] == 0 and starts[-1] + t == length  # full-size tiles, the last shifted inward
        assert all(b - a <= t - overlap for a, b in zip(starts, starts[1:]))  # at least `overlap` shared
        windows = blend_windows(starts, t, length, overlap)
        total = torch.zeros(length, dtype=torch.float64)
        for start, window in zip(starts, windows):
            total[start:start + t] += window
        assert torch.isfinite(windows).all() and (windows >= 0).all()
        assert torch.allclose(total, torch.ones(length, dtype=torch.float64), atol=1e-12)
        margin = overlap // 4  # next to an inner edge a tile sees zero padding: no weight there
        for i in range(1, len(starts)):
            assert not windows[i, :margin].any() and not windows[i - 1, t - margin:].any()


def test_local_score_is_reproduced_exactly():
    """A local operator (two 3x3 convs: radius 2) with overlap/4 ≥ 2 comes out as if untiled."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(8, 3, 3, padding=1))

    def local_score(x, sigma):
        return net(x) / sigma[:, None, None, None]

    x, sigma = torch.rand(2, 3, 72, 100), torch.tensor([0.5, 2.0])
    with torch.no_grad():
        whole = local_score(x, sigma)
        for tile, overlap in [(32, 8), (24, 16), (40, 12)]:
            plan = tiler(tile, overlap).plan(x.shape)
            assert plan.num_tiles > 4
            tiled = TiledScore(local_score, plan)(x, sigma)
            assert (tiled - whole).abs().max() < 1e-5


def test_tile_covering_the_image_is_bit_equal(random_tiny):
    prior = load_prior(random_tiny, preset="ablation-pdc", overrides=FEW_STEPS)
    y = torch.rand(2, 3, 37, 53)  # padded to 40x56 inside
    untiled = Deblurrer(prior, tiling=TilingConfig(tile=0))(y, seed=3).images
    assert torch.equal(Deblurrer(prior, tiling=TilingConfig(tile=64))(y, seed=3).images, untiled)
    assert torch.equal(Deblurrer(prior)(y, seed=3).images, untiled)  # automatic: fits the budget, not tiled


def test_odd_sizes_tile_and_come_back_aligned(random_tiny):
    prior = load_prior(random_tiny, preset="ablation-pdc", overrides=FEW_STEPS)
    seen = []
    prior.model.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape)))
    y = torch.rand(1, 3, 37, 53)
    out = Deblurrer(prior, tiling=TilingConfig(tile=16, overlap=8, tile_batch=3))(y, seed=0)
    assert out.images.shape == y.shape and torch.isfinite(out.images).all() and out.nfe == 4
    assert seen and all(shape[1:] == (3, 16, 16) and shape[0] <= 3 for shape in seen)  # 4 x 6 tiles of 40x56
    assert len(seen) == 4 * 8  # 24 crops in calls of 3, per NFE


def test_tile_batch_does_not_change_the_result(random_tiny):
    """Same result whether crops go one or four at a time. Not bit-equal: CPU conv kernels block
    differently per batch size (ULP-level differences, 1.2e-6 here after 4 sampler steps)."""
    prior = load_prior(random_tiny, preset="ablation-pdc", overrides=FEW_STEPS)
    y = torch.rand(2, 3, 48, 64)
    one, four = (Deblurrer(prior, tiling=TilingConfig(tile=32, overlap=16, tile_batch=k))(y, seed=1).images
                 for k in (1, 4))
    assert (one - four).abs().max() < 1e-5


def _seam_ratios(image: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean |step| between neighbouring rows (dim 2) or columns (dim 3), each divided by the
    median step of its 8 neighbours: a seam is a step that stands out locally."""
    steps = image.diff(dim=dim).abs().mean(dim=tuple(i for i in range(4) if i != dim))
    return torch.stack([steps[j] / torch.cat([steps[max(0, j - 4):j], steps[j + 1:j + 5]]).median()
                        for j in range(len(steps))])


def _boundary_steps(length: int, tile: int, overlap: int) -> list[int]:
    """Step indices (between j and j+1) where a tile ends or its weight starts/stops rising, inside the image."""
    margin = overlap // 4
    edges = {e for s in tile_starts(length, tile, overlap) for e in (s, s + margin, s + tile - margin, s + tile)}
    return sorted(e - 1 for e in edges if 4 <= e <= length - 4)


def test_no_seam_through_the_real_model_and_sampler(random_tiny):
    """Tiles of a smooth image meet without a step; a hard cut (overlap 0) shows one, so the check can fail."""
    prior = load_prior(random_tiny, preset="ablation-pdc", overrides=["sampler.num_steps=20"])
    y = smooth_image(64, 96)
    for overlap, seam_expected in [(16, False), (0, True)]:
        out = Deblurrer(prior, tiling=TilingConfig(tile=32, overlap=overlap))(y, seed=0).images
        worst = max(_seam_ratios(out, 3)[_boundary_steps(96, 32, overlap)].max(),
                    _seam_ratios(out, 2)[_boundary_steps(64, 32, overlap)].max())
        assert (worst > 3.0) if seam_expected else (worst < 2.5), (overlap, worst)


def test_automatic_tiling_follows_the_budget():
    shape = (1, 3, 1120, 1680)
    roomy = tiler(None, None, multiple=8, budget=10 * 1120 * 1680 * 1000)
    assert roomy.plan(shape) is None  # fits: untiled
    budget = 300 * 300 * 1000
    plan = tiler(None, None, multiple=8, budget=budget).plan(shape)
    assert plan.tile_h * plan.tile_w * 1000 <= budget and plan.tile_h % 8 == 0 and plan.batch == 1
    assert plan.starts_y[-1] + plan.tile_h == 1120 and plan.starts_x[-1] + plan.tile_w == 1680
    # the fewest tiles that fit, and the smallest tile giving that count: a smaller one needs more tiles
    smaller = tiler(plan.tile_h - 8, None, multiple=8).plan(shape)
    assert smaller.num_tiles > plan.num_tiles
    assert tiler(None, None, multiple=8, budget=budget).plan((1, 3, 200, 200)) is None
    with pytest.raises(ValueError, match="multiple"):
        tiler(36, None, multiple=8)
    with pytest.raises(ValueError, match="smaller than the tile"):
        tiler(32, 32)


def test_precision_options():
    assert resolve_precision("auto", "cpu") == torch.float32
    with pytest.raises(ValueError, match="choose from"):
        resolve_precision("fp64", "cpu")
    model = torch.nn.Conv2d(3, 3, 3, padding=1)
    x = torch.rand(1, 3, 16, 16)
    fp32 = InferencePrecision("fp32", "cpu").run(lambda a, s: model(a), x, None)
    bf16 = InferencePrecision("bf16", "cpu").run(lambda a, s: model(a), x, None)
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().max() < 0.05


def test_cli_tiling_and_precision_options(tmp_path, random_tiny):
    write_image(tmp_path / "in" / "photo.png", np.random.default_rng(0).uniform(0, 1, (45, 70, 3)).astype(np.float32))
    reconstruct_main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                      "--checkpoint", str(random_tiny), "--preset", "ablation-pdc", "--set", "sampler.num_steps=2",
                      "--tile", "32", "--tile-overlap", "8", "--tile-batch", "2", "--max-memory", "1",
                      "--precision", "auto"])
    assert read_image(tmp_path / "out" / "photo.png").pixels.shape == (45, 70, 3)
    with pytest.raises(SystemExit):
        reconstruct_main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "o2"),
                          "--checkpoint", str(random_tiny), "--tile", "30"])


PEAK_RSS_SCRIPT = """
import json, sys, torch
from hidd.deblur import Deblurrer
from hidd.memory import peak_rss_bytes
from hidd.prior import load_prior
from hidd.tiling import TilingConfig
torch.set_num_threads(1)
ckpt, size = sys.argv[1], int(sys.argv[2])
prior = load_prior(ckpt, preset="ablation-pdc", overrides=["sampler.num_steps=2"])
y = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
out = Deblurrer(prior, tiling=TilingConfig(tile=128, overlap=8, tile_batch=4))(y, seed=0)
print(json.dumps({"peak_rss": peak_rss_bytes(), "nfe": out.nfe}))
"""


def test_tiled_memory_does_not_grow_with_the_network(tmp_path):
    """Peak RSS of 512² vs 1024² (tiny model, tile 128, 2 steps): the growth must stay below 24
    image buffers of the larger image (sampler state, crops, blending), while untiled the
    network alone would grow by its activations, several times that."""
    ckpt = make_tiny_checkpoint(tmp_path / "tiny.pt")

    def peak(size):
        run = subprocess.run([sys.executable, "-c", PEAK_RSS_SCRIPT, str(ckpt), str(size)], capture_output=True,
                             text=True, cwd=REPO, check=True)
        return json.loads(run.stdout.strip().splitlines()[-1])["peak_rss"]

    growth = peak(1024) - peak(512)
    image_bytes = 1024 * 1024 * 3 * 4
    assert growth < 24 * image_bytes, f"peak RSS grew by {growth / 2**20:.0f} MiB"
    prior_cfg = load_prior(ckpt).config.model
    untiled_growth = (1024**2 - 512**2) * activation_bytes_per_pixel(prior_cfg)
    assert untiled_growth > 2 * 24 * image_bytes  # the bound means something: untiled would need far more
