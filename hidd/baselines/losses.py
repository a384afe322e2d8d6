"""Training objectives of the learned baselines, one optimiser step each.

PairedObjective (DnCNN, FFDNet): the mean squared error ‖f(y) − x‖² between the restored defocused crop and
its sharp original (DnCNN's loss), one Adam optimiser.

CycleObjective (CycleGAN, unpaired): blurred crops b and sharp crops s from disjoint draws. Generators
G (→ sharp), F (→ blurred) minimise the least-squares GAN losses (D(G(b)) − 1)² + (D(F(s)) − 1)², the cycle
losses λ (‖F(G(b)) − b‖₁ + ‖G(F(s)) − s‖₁) and the identity losses λ·μ (‖G(s) − s‖₁ + ‖F(b) − b‖₁); then the
discriminators minimise ½ [(D(real) − 1)² + D(fake)²] on each side. λ = cycle_weight, μ = identity_weight
(10 and 0.5 in the CycleGAN paper). Two Adam optimisers (β₁ 0.5, as in the paper).
"""
from __future__ import annotations

import abc
import itertools

import torch
import torch.nn.functional as F


class Objective(abc.ABC):
    """What one training step optimises, and the optimisers that do it."""

    def __init__(self, network, tc):
        self.network = network
        self.optimizers = self.make_optimizers(tc)

    @abc.abstractmethod
    def make_optimizers(self, tc) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers (their states go into the checkpoint)."""

    @abc.abstractmethod
    def step(self, sharp: torch.Tensor, blurred: torch.Tensor, noise_level: torch.Tensor) -> dict[str, float]:
        """One optimiser step; returns the logged losses. Paired objectives get pairs, unpaired ones
        independent draws (blurred[i] is not a version of sharp[i])."""

    def set_lr(self, lr: float) -> None:
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr


class PairedObjective(Objective):
    def make_optimizers(self, tc):
        return {"network": torch.optim.Adam(self.network.parameters(), lr=tc.lr)}

    def step(self, sharp, blurred, noise_level):
        loss = F.mse_loss(self.network.restore(blurred, noise_level), sharp)
        self.optimizers["network"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["network"].step()
        return {"loss": loss.item()}


def least_squares(scores: torch.Tensor, target: float) -> torch.Tensor:
    return (scores - target).square().mean()


class CycleObjective(Objective):
    def __init__(self, network, tc):
        super().__init__(network, tc)
        self.cycle_weight, self.identity_weight = tc.cycle_weight, tc.identity_weight

    def make_optimizers(self, tc):
        n = self.network
        generators = itertools.chain(n.to_sharp.parameters(), n.to_blurred.parameters())
        judges = itertools.chain(n.judge_sharp.parameters(), n.judge_blurred.parameters())
        return {"generators": torch.optim.Adam(generators, lr=tc.lr, betas=(0.5, 0.999)),
                "discriminators": torch.optim.Adam(judges, lr=tc.lr, betas=(0.5, 0.999))}

    def step(self, sharp, blurred, noise_level):
        n, lam = self.network, self.cycle_weight
        fake_sharp, fake_blurred = n.to_sharp(blurred), n.to_blurred(sharp)
        judges = list(itertools.chain(n.judge_sharp.parameters(), n.judge_blurred.parameters()))
        for p in judges:  # the generators' step must not move the discriminators
            p.requires_grad_(False)
        adversarial = least_squares(n.judge_sharp(fake_sharp), 1.0) + least_squares(n.judge_blurred(fake_blurred), 1.0)
        cycle = F.l1_loss(n.to_blurred(fake_sharp), blurred) + F.l1_loss(n.to_sharp(fake_blurred), sharp)
        identity = F.l1_loss(n.to_sharp(sharp), sharp) + F.l1_loss(n.to_blurred(blurred), blurred)
        generator_loss = adversarial + lam * cycle + lam * self.identity_weight * identity
        self.optimizers["generators"].zero_grad(set_to_none=True)
        generator_loss.backward()
        self.optimizers["generators"].step()
        for p in judges:
            p.requires_grad_(True)
        judge_loss = 0.5 * (least_squares(n.judge_sharp(sharp), 1.0) + least_squares(n.judge_sharp(fake_sharp.detach()), 0.0)
                            + least_squares(n.judge_blurred(blurred), 1.0)
                            + least_squares(n.judge_blurred(fake_blurred.detach()), 0.0))
        self.optimizers["discriminators"].zero_grad(set_to_none=True)
        judge_loss.backward()
        self.optimizers["discriminators"].step()
        return {"loss": generator_loss.item(), "adversarial": adversarial.item(), "cycle": cycle.item(),
                "identity": identity.item(), "discriminator": judge_loss.item()}


def objective_for(network, tc) -> Objective:
    return (CycleObjective if network.trains_unpaired else PairedObjective)(network, tc)
