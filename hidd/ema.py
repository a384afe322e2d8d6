"""Exponential moving average of model weights (the weights used for sampling)."""
from __future__ import annotations

import copy

import torch


class EMA:
    """Keeps a frozen copy of the model whose weights trail the trained ones.

    decay at update n is min(rate, (1 + n) / (10 + n)): early on the average follows the
    model closely instead of remembering its random initialisation.
    """

    def __init__(self, model: torch.nn.Module, rate: float = 0.999):
        self.rate = rate  # asymptotic decay per step
        self.num_updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        decay = min(self.rate, (1 + self.num_updates) / (10 + self.num_updates))
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - decay)  # one fused launch
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)

    def state_dict(self) -> dict:
        return {"num_updates": self.num_updates, "weights": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.num_updates = state["num_updates"]
        self.model.load_state_dict(state["weights"], strict=True)
