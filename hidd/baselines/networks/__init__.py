"""The paper's learned comparison methods under one interface (`BaselineNetwork`, registry `NETWORKS`).

dncnn:    residual denoiser-style CNN, trained here to map a defocused photo to its sharp version;
ffdnet:   the same with a noise-level map input, on pixel-unshuffled images;
cyclegan: unpaired blurred ↔ sharp translation; only its blurred → sharp generator restores.
"""
from hidd.baselines.networks import cyclegan, dncnn, ffdnet  # noqa: F401  (importing fills the registry)
from hidd.baselines.networks.base import NETWORKS, BaselineNetwork, build_network

__all__ = ["NETWORKS", "BaselineNetwork", "build_network"]
