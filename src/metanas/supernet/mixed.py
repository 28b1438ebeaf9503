"""The one "mixed op with architecture logits" every supernet shares, and how logits become
op weights.

A :class:`MixedOp` holds the candidate ops of one edge and returns ``sum_k w_k * op_k(x)`` for a
weight vector ``w`` computed from that edge's logits by :func:`mix_weights`:

* ``softmax``: ``softmax(logits / tau)`` (DARTS; the BASE ablation),
* ``gumbel``: ``softmax((logits + g) / tau)`` with fresh Gumbel(0, 1) noise ``g`` on every call
  (BASE's relaxed categorical),
* ``hard``: Gumbel-max one-hot in the forward pass with the ``gumbel`` gradient
  (straight-through; GDAS): only the sampled op is computed,
* ``argmax``: the most probable op, no gradient (evaluating a derived cell inside the supernet).

Ops whose weight is exactly zero and carries no gradient are skipped, so one-hot weights cost
one op per edge and give exactly that op's output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from metanas.errors import ConfigError

SAMPLING_MODES = ("gumbel", "softmax", "hard", "argmax")


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape (strided like the edge)."""

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


@dataclass
class EdgeWeights:
    """Op weights of a table of edges: ``weights`` (E, K); ``active`` (E,) long indices when
    exactly one op per edge is to be computed (hard sampling / argmax), else ``None``."""

    weights: torch.Tensor
    active: torch.Tensor | None = None


class MixedOp(nn.Module):
    """Weighted sum of candidate ops on one edge; weights come from outside (the logits live in
    the supernet so that one table can drive many cells)."""

    def __init__(self, ops: Sequence[nn.Module]) -> None:
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self._zero = [isinstance(op, Zero) for op in self.ops]

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                active: int | None = None) -> torch.Tensor:
        if active is not None:
            return weights[active] * self.ops[active](x)
        out = None
        skip_zeros = not weights.requires_grad
        for k, op in enumerate(self.ops):
            if self._zero[k]:
                continue  # adds w * 0 = 0
            if skip_zeros and float(weights[k]) == 0.0:
                continue
            term = weights[k] * op(x)
            out = term if out is None else out + term
        if out is None:  # every weight on ``none`` (or zero): the zero output, right shape
            zero = next(op for op, z in zip(self.ops, self._zero, strict=True) if z) \
                if any(self._zero) else Zero()
            out = zero(x)
        return out


def gumbel_noise(shape: torch.Size | tuple[int, ...], generator: torch.Generator | None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Gumbel(0, 1) samples from ``generator`` (drawn on the CPU so results do not depend on
    the device)."""
    u = torch.rand(shape, generator=generator).clamp_(1e-10, 1.0 - 1e-7)
    return (-torch.log(-torch.log(u))).to(device)


def mix_weights(logits: torch.Tensor, mode: str = "gumbel", tau: float = 1.0,
                generator: torch.Generator | None = None) -> EdgeWeights:
    """Op weights for a (E, K) logits table (see the module docstring)."""
    if mode not in SAMPLING_MODES:
        raise ConfigError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, got {mode!r}")
    if not tau > 0:
        raise ConfigError(f"temperature must be > 0, got {tau!r}")
    if mode == "argmax":
        idx = logits.detach().argmax(-1)
        return EdgeWeights(nn.functional.one_hot(idx, logits.shape[-1]).to(logits.dtype), idx)
    if mode == "softmax":
        return EdgeWeights(torch.softmax(logits / tau, dim=-1))
    soft = torch.softmax((logits + gumbel_noise(logits.shape, generator, logits.device)) / tau,
                         dim=-1)
    if mode == "gumbel":
        return EdgeWeights(soft)
    idx = soft.detach().argmax(-1)
    hard = nn.functional.one_hot(idx, logits.shape[-1]).to(soft.dtype)
    return EdgeWeights(hard - soft.detach() + soft, idx)


@dataclass(frozen=True)
class TemperatureSchedule:
    """Temperature ``start`` at step 0 annealed to ``end`` at step ``steps`` (then held):
    ``exp`` (geometric), ``linear`` or ``constant`` (always ``start``)."""

    start: float = 1.0
    end: float = 0.2
    steps: int = 1
    kind: str = "exp"

    def __post_init__(self) -> None:
        if self.kind not in ("exp", "linear", "constant"):
            raise ConfigError(f"temperature schedule must be exp, linear or constant, "
                              f"got {self.kind!r}")
        if not (self.start > 0 and self.end > 0):
            raise ConfigError(f"temperatures must be > 0, got start={self.start} end={self.end}")
        if self.steps < 1:
            raise ConfigError(f"temperature schedule steps must be >= 1, got {self.steps}")

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return float(self.start)
        frac = min(max(step, 0), self.steps) / self.steps
        if self.kind == "linear":
            return float(self.start + (self.end - self.start) * frac)
        return float(self.start * math.exp(math.log(self.end / self.start) * frac))
