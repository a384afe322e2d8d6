"""Typed configuration: YAML files, `--set section.key=value` overrides, strict keys.

Every setting lives in a dataclass below, with its default and a one-line meaning. A YAML
file only lists what differs from the defaults; a key that is not defined here is an error
that names the valid keys, so a typo can never be silently ignored.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hidd.atomic import write_text_atomic

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
PRESET_DIR = CONFIG_DIR / "presets"  # named sampler settings (hidd-reconstruct --preset)
DEFAULT_PRESET = "fast"  # hidd-reconstruct's sampler when neither --preset nor --config is given


class ConfigError(ValueError):
    """A configuration problem, reported as one line."""


@dataclass
class DataConfig:
    roots: list[str] = field(default_factory=lambda: ["data/corpus/tiles"])  # folders of sharp images or DPDD roots
    val_roots: list[str] = field(default_factory=list)  # held-out sharp images; empty: hold out `val_images` files
    val_images: int = 4  # files held out of `roots` for denoising PSNR when val_roots is empty
    image_size: int = 256  # training crop (or resize) side in pixels
    mode: str = "crop"  # 'crop': random crops; 'resize': whole image resized to image_size² (the paper)
    random_flip: bool = True  # random horizontal flips
    exposure: float = 0.0  # crops brightened or darkened by up to this many stops, in linear light (0: off)
    scale_jitter: float = 1.0  # crop mode: crops downscaled by a random factor in [1, this] (1: off)
    cache: bool = True  # keep decoded images in memory (small corpora)
    num_workers: int = 2  # DataLoader worker processes


@dataclass
class ModelConfig:
    name: str = "ncsnpp"  # score network architecture
    channels: int = 3  # image channels in and out: 1 (the paper's grayscale model) or 3
    nf: int = 128  # base number of feature maps
    ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 2, 2, 2])  # feature multiplier per level
    num_res_blocks: int = 2  # residual blocks per level
    attn_resolutions: list[int] = field(default_factory=lambda: [16])  # feature sizes (at data.image_size) with attention
    dropout: float = 0.0
    fir_kernel: list[int] = field(default_factory=lambda: [1, 3, 3, 1])  # FIR resampling filter
    skip_rescale: bool = True  # scale skip sums by 1/sqrt(2)
    fourier_scale: float = 16.0  # std of the Gaussian Fourier features of log σ
    init_scale: float = 0.0  # init scale of the last conv of each block (0: zero init)


@dataclass
class SDEConfig:
    name: str = "ve"  # forward SDE ('ve': variance exploding)
    sigma_min: float = 0.01  # σ at t = 0
    sigma_max: float = 300.0  # σ at t = 1 (the paper; the authors' code trained with 378)
    num_scales: int = 1000  # N discrete noise levels


@dataclass
class TrainingConfig:
    steps: int = 1_300_000  # optimiser steps in total
    batch_size: int = 1  # images per step, summed over all GPUs
    lr: float = 2e-4  # Adam learning rate
    beta1: float = 0.9
    eps: float = 1e-8  # Adam epsilon
    weight_decay: float = 0.0
    warmup: int = 5000  # linear learning-rate warm-up steps
    grad_clip: float = 1.0  # max global gradient norm (0: off)
    ema_rate: float = 0.999  # EMA decay, ramped by (1 + n) / (10 + n)
    t_min: float = 1e-5  # t ~ U(t_min, 1) in the score-matching loss
    loss_reduction: str = "sum"  # 'sum' over pixels (the reference) or 'mean'
    precision: str = "fp32"  # 'fp32' or 'bf16' (autocast, CUDA only)
    channels_last: bool = False  # channels_last memory format (CUDA)
    checkpoint_every: int = 10_000  # keep a numbered checkpoint every so many steps
    latest_every: int = 500  # refresh the rolling `latest` checkpoint (pre-emption)
    log_every: int = 50  # TensorBoard scalars
    eval_every: int = 5000  # denoising PSNR on held-out crops
    eval_sigmas: list[float] = field(default_factory=lambda: [0.02, 0.05, 0.1, 0.2])
    sample_every: int = 0  # sample grids (0: off)
    sample_steps: int = 100  # reverse-diffusion steps for the sample grid
    time_limit_minutes: float = 0.0  # stop (with a checkpoint) after this much wall time; 0: no limit
    seed: int = 0


@dataclass
class SamplerConfig:
    predictor: str = "reverse_diffusion"  # 'reverse_diffusion', 'euler_maruyama' or 'none'
    corrector: str = "langevin"  # 'langevin' or 'none'
    consistency: str = "interpolate"  # 'interpolate' (paper Eq. 11), 'prox' or 'gradient' (blur-aware), 'none'
    num_steps: int = 1000  # reverse iterations N
    snr: float = 0.16  # corrector signal-to-noise ratio (sets the Langevin step size)
    corrector_steps: int = 1  # M Langevin steps per iteration
    corrector_chains: int = 1  # parallel Langevin chains whose scores are averaged (authors: 3)
    alpha: float = 0.15  # consistency weight: x ← x − α (x − y)
    alpha_after_predictor: float = 0.0  # authors' extra pull after the predictor (0: off)
    minmax_normalize: bool = False  # authors' code: rescale each iterate to its photo's range (all channels) every iteration
    carry_mean: bool = False  # authors' code: continue from the noise-free mean x_mean after each stage
    order: str = "predictor_first"  # pc loop: 'predictor_first' (paper, authors) or 'corrector_first' (score_sde)
    denoise_final: bool = True  # last step uses the noise-free mean
    t_end: float = 1e-5  # time grid ends here (linspace(1, t_end, N))
    loop: str = "pc"  # 'pc': predictor–corrector iterations (paper); 'tweedie': denoise, data step, re-noise (DiffPIR)
    schedule: str = "linear_t"  # σ grid: 'linear_t' (σ(t), t = linspace(1, t_end, N); pc), 'geometric', 'edm' (tweedie)
    sigma_start: float = 0.0  # warm start: begin at y + sigma_start z (tweedie loop); 0: from pure noise at σ_max
    sigma_end: float = 0.0  # last σ of geometric/edm grids (then one final step to σ = 0); 0: the SDE's σ_min
    rho: float = 7.0  # exponent of the 'edm' grid (larger: denser at low σ)
    zeta: float = 1.0  # tweedie loop re-noising: 0 deterministic (predicted noise only), 1 fresh noise only
    renoise: float = 1.0  # tweedie loop re-noising scale: 1 DiffPIR (noise σ_next), 0 none (plug-and-play HQS)
    score_ensemble: int = 1  # tweedie loop: average the score over 1, 2 or 4 mirror images (one NFE each)
    prox_lambda: float = 1.0  # λ of the blur-aware data weight ρ = λ σ_n² / σ² ('prox', 'gradient')
    noise_calibration: float = 0.0  # σ at which σ_n is re-measured as the misfit RMS(y − A x̂₀); 0: never
    prox_lambda_white: float = 0.0  # λ from the calibration on when that misfit is white (uncorrelated); 0: off
    softening_white: float = 1.0  # with prox_lambda_white: factor on a blind PSF's softening when the misfit is white
    tone_curve: str = "srgb"  # the camera's tone curve Γ: blur acts on linear light Γ⁻¹(y); 'srgb', 'gamma', 'none'
    gamma: float = 2.2  # exponent of tone_curve 'gamma'
    psf: str = "disk"  # PSF family of a given radius: 'disk', 'polygon', 'gaussian' (radius = std)
    blades: int = 6  # polygon sides when psf is 'polygon'
    radius: float = 0.0  # PSF radius in pixels; 0: blind, radius and softening estimated per image (hidd.blind)
    softening: float = 0.0  # std (pixels) of a Gaussian softening of a given PSF (diffraction, sensor, demosaicing)
    max_radius: float = 30.0  # the blind radius search covers [0, max_radius] pixels
    shared_quantile: float = 0.0  # in [0, 0.5): where the blind fit reads in focus, a blur it preferred unclearly is
    # taken if the tiles' quantiles q and 1 − q bracket it; else, where the tiles' radii vary, deblur by the radius all
    # but this fraction of the photo's tiles reach (depth-varying defocus, hidd.blind.defocus); 0: off
    edge_read_share: float = 0.0  # in [0, 1]: where every blind reading says in focus but the photo's edges are no
    # sharper than a blur of 3–12 px leaves them (textureless photos), deblur by that blur and keep at most this share
    # of the result (hidd.blind.defocus); 0: off
    radius_map: bool | str = False  # blind (radius 0) spatially varying blur from a per-pixel defocus map: false
    # (none: one PSF per photo), edges (from its edges, hidd.blind.defocus_map; true means edges) or learned (a small
    # network, hidd.blind.map_net, checkpoints/defocus_map.pt); hidd.blind.map_estimators
    map_network: str = ""  # with radius_map learned: the network's checkpoint (a defocus_map.pt that
    # scripts/train_defocus_map.py exports); '': the shipped checkpoints/defocus_map.pt
    radius_tile: int = 64  # tile side (pixels) of the defocus map's readings (tiles overlap by 1/2)
    noise_sigma: float = 0.0  # measurement noise std on [0, 1]; 0: estimated from each image
    noise_sigma_min: float = 0.0  # floor of that estimate
    max_noise_gain: float = 0.0  # blind deblurring: a result whose flat-patch noise exceeds this × the input's is
    # backed off to the blend y + w (x̂ − y) with the largest w of ¾, ½, ¼ whose noise is within 1.5× (and this), else
    # to the input unchanged; a photo the blind estimate reads in focus is returned unchanged (hidd.no_harm); 0: off
    hedge_share: float = 1.0  # in (0, 1], with max_noise_gain and one blind PSF per photo (not a given radius, not a
    # radius map): the share of the result kept where the data step's calibration misfit is correlated (the model does
    # not explain the photo) or was never measured (noise_calibration 0), 1 where it is white (hidd.no_harm); 1: off
    ringing_share: float = 1.0  # in (0, 1], with max_noise_gain and one PSF per photo (not a radius map): the most of a
    # result kept whose power piles up at its blur's first OTF notch (deconvolution ringing, hidd.ringing); 1: off
    noisy_retry_lambda: float = 0.0  # 0, or > 1 with max_noise_gain: where a blind result (one PSF, or a blind map) is too
    # noisy for the guard and its calibration misfit correlated, that photo is sampled once more, noisy_retry_steps
    # levels with the calibrated σ_n and λ × this, and that result is kept where the guard keeps more of it
    # (hidd.stages.select); 0: off
    noisy_retry_steps: int = 8  # the levels of that second sampling (NFE: levels × score_ensemble, for that photo)
    gray_photos: bool = False  # a colour photo whose chroma is at most its noise level (a black-and-white photo saved
    # as RGB) comes back gray: its result, and the photo the guard blends it with, projected onto gray (hidd.colour)
    boundary: str = "free"  # 'prox' image border: 'free' (scene beyond the frame unknown) or 'reflect' (synthetic)
    gradient_steps: int = 5  # descent steps per iteration of the 'gradient' consistency
    gradient_step: float = 1.0  # their step length, in units of 1 / Lipschitz constant (≤ 2)


class ConfigDocument:
    """What every top-level config (Config, hidd.baselines.config.BaselineConfig) writes out."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


@dataclass
class Config(ConfigDocument):
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sde: SDEConfig = field(default_factory=SDEConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)


def _field_types(cls) -> dict[str, typing.Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown_key(where: str, key: str, valid) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    name = f"{where}.{key}" if where else key
    kind = "key" if where else "section"
    return ConfigError(f"unknown {kind} '{name}'{hint}; valid {kind}s{' of ' + where if where else ''}: {', '.join(valid)}")


def _coerce(value, typ, where: str):
    """Check (and gently convert) a YAML value to the declared field type."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):  # the first of its types that takes the value (bool | str)
        for option in typing.get_args(typ):
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
        names = " or ".join(getattr(t, "__name__", str(t)) for t in typing.get_args(typ))
        raise ConfigError(f"{where}: expected {names}, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(typ)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            value = [value]
        return [_coerce(v, item, where) for v in value]
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(f)
    if typ is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not math.isfinite(number):  # NaN or infinity in a setting would reach every pixel
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {typ}")


def _apply(obj, values: dict, where: str) -> None:
    types = _field_types(type(obj))
    for key, value in values.items():
        if key not in types:
            raise _unknown_key(where, key, list(types))
        path = f"{where}.{key}" if where else key
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: expected a section (mapping), got {value!r}")
            _apply(current, value, path)
        else:
            setattr(obj, key, _coerce(value, types[key], path))


def from_dict(values: dict | None, base: Config | None = None) -> Config:
    """A Config with `values` (nested dict) applied on top of `base` (or the defaults)."""
    cfg = copy.deepcopy(base) if base is not None else Config()
    _apply(cfg, values or {}, "")
    return cfg


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return values


INHERITS = "inherits"  # top-level key: start from a sibling file first (`inherits: fast` → ./fast.yaml)


def load_config(path: str | Path | None = None, overrides: list[str] = (), base: Config | None = None,
                _chain: tuple[Path, ...] = ()) -> Config:
    """Defaults (or `base`), then the YAML file (after the file it inherits from), then `--set` overrides,
    all checked."""
    cfg = base if base is not None else Config()
    if path is not None:
        path = Path(path)
        values = load_yaml(path)
        parent = values.pop(INHERITS, None)
        if parent is not None:
            if not isinstance(parent, str):
                raise ConfigError(f"{path}: {INHERITS} must name a config file next to it, got {parent!r}")
            parent_path = path.parent / f"{parent}.yaml"
            if parent_path.resolve() in _chain + (path.resolve(),):
                raise ConfigError(f"{path}: {INHERITS} {parent} makes a cycle")
            if not parent_path.is_file():
                raise ConfigError(f"{path}: {INHERITS} {parent}: no {parent_path}")
            cfg = load_config(parent_path, base=cfg, _chain=_chain + (path.resolve(),))
        try:
            cfg = from_dict(values, cfg)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    return apply_overrides(cfg, overrides)


def parse_override(text: str) -> tuple[list[str], typing.Any]:
    """'training.lr=1e-4' -> (['training', 'lr'], 1e-4); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected section.key=value")
    key, raw = text.split("=", 1)
    keys = key.strip().split(".")
    if len(keys) < 2 or not all(keys):
        raise ConfigError(f"--set {text}: expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return keys, value


def apply_overrides(cfg: Config, overrides) -> Config:
    for text in overrides or ():
        keys, value = parse_override(text)
        nested: dict = value
        for k in reversed(keys):
            nested = {k: nested}
        cfg = from_dict(nested, cfg)
    return cfg


def in_repository(path: str | Path) -> Path:
    """`path` as given where it exists or is absolute; else, where the repository holds it (a shipped checkpoint,
    config or example named from another folder: `checkpoints/ffdnet.pt`), that; else as given, for its reader to
    name as missing."""
    given = Path(path)
    if given.exists() or given.is_absolute():
        return given
    shipped = REPO_ROOT / given
    return shipped if shipped.exists() else given


def resolve_config_path(name: str, folder: Path = CONFIG_DIR) -> Path:
    """A config given as a path (one the repository ships, from any folder: in_repository), or by name from `folder`
    ('tiny' -> configs/tiny.yaml); ConfigError naming the configs there where it is neither."""
    p = in_repository(name)
    if p.is_file():
        return p
    candidate = folder / (name if name.endswith(".yaml") else f"{name}.yaml")
    if candidate.is_file():
        return candidate
    named = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
    raise ConfigError(f"{name}: no such config file, nor a config named so in {folder.relative_to(REPO_ROOT)}/ "
                      f"({named})")


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config next to a run's outputs (atomically: a kill never leaves half of it)."""
    write_text_atomic(path, cfg.to_yaml())


SUMMARY = "# Summary: "  # a preset file's first line: what it is, in one line (hidd-reconstruct --help lists them)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_summaries() -> dict[str, str]:
    """Each preset's one-line summary (its file's first line), by name, the default first."""
    summaries = {}
    for name in sorted(preset_names(), key=lambda n: (n != DEFAULT_PRESET, n)):
        first = (PRESET_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[:1]
        summaries[name] = first[0].removeprefix(SUMMARY) if first and first[0].startswith(SUMMARY) else ""
    return summaries
