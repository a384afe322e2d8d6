"""Blind defocus map estimators by name (sampler.radius_map), each reading one photo on its own.

  edges    the blur each region's strongest edges allow (hidd.blind.defocus_map.estimate_defocus_map), from the
           photo in linear light and its grey noise std;
  learned  a small network trained on rendered scenes (hidd.blind.map_net); its weights are
           checkpoints/defocus_map.pt (map_net.CHECKPOINT). It reads the photo encoded as the photos it was trained
           on were (map_net.TRAINED_TONE, sRGB: hidd.camera's curve), re-encoded from linear light, so that a photo
           read under another sampler.tone_curve (none: linear values) shows it what it knows. The network reads
           the map's shape; its scale is the photo's own, read from its tiles' spectra (radius_map.map_scale), and
           it is held under the blur the edges near each pixel allow (defocus_map.edge_ceiling, a physical bound):
           a map that reads too large rings, one that reads too small only deblurs less.

sampler.radius_map: false (one PSF per photo, no map), edges, learned; true is edges (the configs written before
the learned map). An estimator is called as estimator(photo, linear, noise_std, tile) with one photo (C, H, W) of
encoded values in [0, 1], the same photo in linear light, its grey noise std (linear light) and the tile side
(sampler.radius_tile), and returns a DefocusMap. sampler.map_network names the learned map's checkpoint ('' for the
shipped one); any other estimator refuses it (map_network_problem).
"""
from __future__ import annotations

from pathlib import Path

import torch

from hidd.blind.defocus_map import MAX_MAP_RADIUS, DefocusMap, edge_ceiling, estimate_defocus_map, tile_means
from hidd.blind.radius_map import map_scale
from hidd.camera.tone import tone_curve
from hidd.registry import Registry

MAP_ESTIMATORS = Registry("radius map estimator", key="sampler.radius_map")
LEGACY_TRUE = "edges"  # what sampler.radius_map: true reads as


@MAP_ESTIMATORS.register("edges")
class EdgeMap:
    def __call__(self, photo: torch.Tensor, linear: torch.Tensor, noise_std: float, tile: int) -> DefocusMap:
        return estimate_defocus_map(linear, noise_std, tile)


@MAP_ESTIMATORS.register("learned")
class LearnedMap:
    def __init__(self, checkpoint=None):
        self.checkpoint = checkpoint  # None: map_net.CHECKPOINT

    def __call__(self, photo: torch.Tensor, linear: torch.Tensor, noise_std: float, tile: int) -> DefocusMap:
        from hidd.blind.map_net import CHECKPOINT, TRAINED_TONE, learned_defocus_map, load_network

        net = load_network(self.checkpoint or CHECKPOINT, photo.device)
        seen = tone_curve(TRAINED_TONE).encode(linear.clamp(0, 1)).to(photo.dtype)
        found = learned_defocus_map(seen, net, tile)
        scaled = (found.radius * map_scale(found.radius, linear, tile=tile)).clamp(max=MAX_MAP_RADIUS)
        radius = torch.minimum(scaled, edge_ceiling(linear, noise_std, tile).to(scaled))
        return DefocusMap(radius, found.confidence, tile_means(radius, tile))


def estimator_name(value) -> str | None:
    """The estimator a sampler.radius_map value names: None for false (no map), 'edges' for true; ValueError
    (one line) for anything else."""
    problem = radius_map_rule(value)
    if problem:
        raise ValueError(f"sampler.radius_map: {value!r} is not valid; {problem}")
    return None if value is False else LEGACY_TRUE if value is True else value


def radius_map_rule(value) -> str | None:
    """The settings rule of sampler.radius_map (hidd.rules): None where valid, else what it may be."""
    if isinstance(value, bool) or (isinstance(value, str) and value in MAP_ESTIMATORS.names()):
        return None
    return f"choose from false, {', '.join(MAP_ESTIMATORS.names())} (true: {LEGACY_TRUE})"


def map_network_problem(radius_map, map_network: str) -> str | None:
    """None where sampler.map_network fits sampler.radius_map (empty, or the estimator is learned), else why not."""
    if map_network and estimator_name(radius_map) != "learned":
        return (f"sampler.map_network {map_network!r} is the learned map's network, but sampler.radius_map is "
                f"{radius_map!r}: set sampler.radius_map=learned or leave sampler.map_network empty")
    return None


def learned_network(sampler) -> Path | None:
    """The checkpoint the learned estimator reads under a sampler section (sampler.map_network, else the shipped
    map_net.CHECKPOINT); None where the section reads no learned map."""
    if not sampler.radius_map or estimator_name(sampler.radius_map) != "learned":
        return None
    from hidd.blind.map_net import CHECKPOINT
    return Path(sampler.map_network) if sampler.map_network else CHECKPOINT


def map_estimator(value, network: str = ""):
    """The estimator instance for a sampler.radius_map value (None for false); `network`: the learned map's
    checkpoint ('' for the shipped one; ValueError in one line with another estimator)."""
    problem = map_network_problem(value, network)
    if problem:
        raise ValueError(problem)
    name = estimator_name(value)
    return None if name is None else MAP_ESTIMATORS.get(name)(*([network] if network else []))
