"""Launched by test_train.py under torchrun: trains a few steps with gloo, saves this rank's weights."""
import sys
from pathlib import Path

import torch

from hidd.config import load_config, resolve_config_path
from hidd.train import train

data_root, out = sys.argv[1], Path(sys.argv[2])
cfg = load_config(resolve_config_path("tiny"), [f"data.roots=[{data_root}]", "training.steps=4",
                                                 "training.batch_size=4", "training.eval_every=0"])
result = train(cfg, out / "run", device="cpu")
rank = int(__import__("os").environ["RANK"])
torch.save({"step": 4, "weights": result.model.state_dict()}, out / f"rank{rank}.pt")
