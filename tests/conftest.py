"""Shared fixtures: tiny synthetic sharp images (never skimage's photos, which are the test set)."""
from __future__ import annotations

import csv
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from hidd.camera.optics import otf
from hidd.camera.psf import LensPSF
from hidd.imageio import write_image


SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))  # make_benchmark imports its sibling prepare_corpus, as when run as a script


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: on a shared 2-core machine two spinning OpenMP threads run many times slower,
    and small networks gain nothing from threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load_script(name: str):
    """scripts/NAME.py as a module (registered, so that its dataclasses find it)."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def read_csv(path) -> list[dict]:
    """The rows of a CSV file (metrics.csv, per_image.csv, ...) as dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def synthetic_photo(seed: int, size: int = 48) -> np.ndarray:
    """Smooth colour gradients with a few sharp-edged rectangles: a stand-in for a sharp photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (f * xx + g * yy) + p)
                      for f, g, p in rng.uniform(0.2, 1.5, (3, 3))], axis=-1)
    for _ in range(4):
        y0, x0 = rng.integers(0, size - 8, 2)
        h, w = rng.integers(4, size // 2, 2)
        image[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 1, 3)
    return image.clip(0, 1).astype(np.float32)


def gray_crop(name: str) -> torch.Tensor:
    """A 128² gray crop of a skimage photo, (H, W) in [0, 1]."""
    image = torch.from_numpy(getattr(skimage.data, name)()).double() / 255
    image = image.mean(dim=-1) if image.ndim == 3 else image
    return image[100:228, 100:228]


def lens_filter(image: torch.Tensor, lens: LensPSF) -> torch.Tensor:
    """(H, W) blurred by `lens` with circular boundaries."""
    return torch.fft.ifft2(torch.fft.fft2(image) * otf(lens.channel(1.0, dtype=torch.float64), image.shape,
                                                       full=True)).real


def wiener(image: torch.Tensor, lens: LensPSF, regularisation: float = 1e-3) -> torch.Tensor:
    """(H, W) deconvolved by `lens` (Wiener filter, circular boundaries): it rings where the blur was another."""
    k = otf(lens.channel(1.0, dtype=torch.float64), image.shape, full=True)
    return torch.fft.ifft2(torch.fft.fft2(image) * k.conj() / (k.abs() ** 2 + regularisation)).real


def dense_minimiser(forward, start: torch.Tensor, v: torch.Tensor, rho: float) -> torch.Tensor:
    """argmin_u ‖forward(u) − v‖² + ρ ‖u − start‖² for a linear `forward` of flat float64 vectors, by a dense solve
    (its matrix built column by column by autograd): the reference the proximal steps' iterative solvers meet."""
    size = start.numel()
    a = torch.autograd.functional.jacobian(forward, torch.zeros(size, dtype=torch.float64))
    eye = torch.eye(size, dtype=torch.float64)
    return torch.linalg.solve(a.T @ a + rho * eye, a.T @ v.reshape(-1) + rho * start.reshape(-1))


@pytest.fixture
def sharp_folder(tmp_path):
    folder = tmp_path / "sharp"
    for i in range(6):
        write_image(folder / f"img{i}.png", synthetic_photo(i))
    return folder


def make_tiny_checkpoint(path, *overrides, seed: int = 0):
    """An untrained tiny-config checkpoint in the shipped (EMA-only) format."""
    import torch

    from hidd.checkpoint import save_atomic
    from hidd.config import load_config, resolve_config_path
    from hidd.models import build_model

    cfg = load_config(resolve_config_path("tiny"), list(overrides))
    torch.manual_seed(seed)
    model = build_model(cfg)
    save_atomic({"ema": {"num_updates": 0, "weights": model.state_dict()}, "step": 0, "config": cfg.to_dict()}, path)
    return path


@pytest.fixture
def tiny_checkpoint(tmp_path):
    return make_tiny_checkpoint(tmp_path / "tiny.pt")


@pytest.fixture
def bounded_walks(monkeypatch):
    """os.walk that fails after 50 folders: a folder walk going in circles fails the test instead of hanging it."""
    walk = os.walk

    def bounded(*args, **kwargs):
        for count, entry in enumerate(walk(*args, **kwargs)):
            assert count < 50, "the folder walk goes in circles"
            yield entry

    monkeypatch.setattr(os, "walk", bounded)
