"""What one training step minimises, per generator architecture, as named loss terms.

``PerceptualObjective`` (johnson, texture): the generator's output against the batch (content)
and the style images (Gram style), plus total variation; the style term is left out during the
warm-up steps, so the generator first learns to reproduce its input.

``StyleBankObjective`` (Chen et al. 2017): the (T+1) alternation of the paper. ``T`` style steps
(one style per step, drawn at random among the banks that train; the loss against that style's
Gram targets alone, weighted by its ``--style-blend`` entry), then one auto-encoder step (encoder
and decoder reproduce the input: pixel MSE, logged as ``identity``). A run that trains only some
banks (``train_banks``: ``--add-style``, ``--tune-style``) has no auto-encoder steps: encoder and
decoder are frozen.

``MultiStyleObjective`` (CIN, Dumoulin et al. 2017): as StyleBank's style steps, one style per step
drawn at random among the styles that train, against that style's targets alone; no auto-encoder
steps (CIN has no style-free branch: every layer is shared by all styles, which is what keeps content).

A step returns the loss to minimise and its named terms; the trainer averages each term over the
steps that produced it (see :class:`nstcli.train.Trainer`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable

import torch

from nstcli.losses import PerceptualLoss
from nstcli.settings import TrainConfig

STYLE_TERMS = ("content", "style", "tv", "total")
Autocast = Callable[[], AbstractContextManager]  # a fresh autocast context per forward pass
IDENTITY_TERM = "identity"


@dataclass
class StepLoss:
    loss: torch.Tensor  # what the optimiser minimises
    terms: dict[str, torch.Tensor]  # named, detached, for the log


class PerceptualObjective:
    """Johnson and texture networks: one (possibly blended) style for every step."""

    def __init__(self, config: TrainConfig, loss_fn: PerceptualLoss):
        self.config = config
        self.loss_fn = loss_fn

    @property
    def term_names(self) -> tuple[str, ...]:
        return STYLE_TERMS

    def preview_inputs(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Extra generator inputs after the image for a preview (none)."""
        return ()

    def step(self, network: torch.nn.Module, batch: torch.Tensor, step: int, autocast: Autocast) -> StepLoss:
        self.loss_fn.set_content(batch)
        with autocast():
            output = network(batch)
        return self._judge(output, step, style=None)

    def _judge(self, output: torch.Tensor, step: int, style: int | None) -> StepLoss:
        terms = self.loss_fn(output.float(), style)
        style_phase = step >= self.config.warmup_steps
        total = terms.content + terms.tv + (terms.style if style_phase else 0)
        named = {"content": terms.content, "style": terms.style, "tv": terms.tv, "total": total}
        return StepLoss(total, {name: value.detach() for name, value in named.items()})


class MultiStyleObjective(PerceptualObjective):
    """A multi-style generator (``branch(image, style)``): one style per step, drawn at random."""

    trains_identity = False

    def __init__(self, config: TrainConfig, loss_fn: PerceptualLoss):
        super().__init__(config, loss_fn)
        self.styles = len(loss_fn.style_targets)

    @property
    def term_names(self) -> tuple[str, ...]:
        return STYLE_TERMS + ((IDENTITY_TERM,) if self.trains_identity else ())

    def preview_inputs(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """The last style's one-hot style weights (the style an incremental run trains)."""
        return (torch.eye(self.styles, device=device)[-1],)

    def branch(self, step: int) -> int | None:
        """The style this step trains (drawn at random), or None for the auto-encoder step."""
        period = self.config.steps_per_identity
        if self.trains_identity and step % (period + 1) == period:
            return None
        banks = self.config.train_banks or range(self.styles)
        return banks[int(torch.randint(len(banks), ()).item())]

    def step(self, network: torch.nn.Module, batch: torch.Tensor, step: int, autocast: Autocast) -> StepLoss:
        style = self.branch(step)
        if style is None:  # StyleBank's auto-encoder step
            with autocast():
                output = network.branch(batch, None)
            identity = torch.nn.functional.mse_loss(output.float(), batch)
            return StepLoss(identity, {IDENTITY_TERM: identity.detach()})
        self.loss_fn.set_content(batch)
        with autocast():
            output = network.branch(batch, style)
        return self._judge(output, step, style)


class StyleBankObjective(MultiStyleObjective):
    """StyleBank: per-step branch choice between one style's bank and the auto-encoder."""

    def __init__(self, config: TrainConfig, loss_fn: PerceptualLoss):
        super().__init__(config, loss_fn)
        self.trains_identity = config.train_banks is None


def make_objective(config: TrainConfig, loss_fn: PerceptualLoss) -> PerceptualObjective:
    """The objective of ``config.arch``; for a multi-style model, ``loss_fn`` holds one style target per style."""
    if config.arch == "stylebank":
        return StyleBankObjective(config, loss_fn)
    if config.multi_style:
        return MultiStyleObjective(config, loss_fn)
    return PerceptualObjective(config, loss_fn)
