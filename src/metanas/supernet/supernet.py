"""What every supernet shares: input heads, named architecture-logit tables, a per-task
classifier, op weights from the logits, and the "meta state" that meta-learning moves.

The classifier is per task: tasks have different label sets, so :meth:`reset_classifier`
replaces it by a zero-initialised linear layer (uniform predictions at the start of every task)
and it is never part of the meta state or of a checkpoint.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from metanas.supernet.heads import InputHeads
from metanas.supernet.mixed import EdgeWeights, mix_weights

CLASSIFIER_PREFIX = "classifier."


class Supernet(nn.Module):
    """Base class; subclasses build ``self.body`` parts and declare their logit tables."""

    space: ClassVar[str]
    ops: ClassVar[tuple[str, ...]]

    def __init__(self, *, resolutions: tuple[int, ...], feature_size: int, c_stem: int,
                 num_classes: int = 2) -> None:
        super().__init__()
        self.heads = InputHeads(tuple(resolutions), feature_size, c_stem)
        self.arch = nn.ParameterDict()
        self.classifier = nn.Linear(1, num_classes)  # replaced by reset_classifier
        self.c_out = 1

    # ----- architecture parameters --------------------------------------------------------
    def add_table(self, name: str, edges: int) -> None:
        """A zero-initialised (uniform) logits table of ``edges`` x ``len(ops)``."""
        self.arch[name] = nn.Parameter(torch.zeros(edges, len(self.ops)))

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.arch.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    def sample_weights(self, mode: str = "gumbel", tau: float = 1.0,
                       generator: torch.Generator | None = None) -> dict[str, EdgeWeights]:
        """Op weights of every table (fresh Gumbel noise from ``generator`` per call)."""
        return {name: mix_weights(t, mode, tau, generator) for name, t in self.arch.items()}

    def probabilities(self) -> dict[str, np.ndarray]:
        """softmax(logits) per table: the architecture distribution."""
        with torch.no_grad():
            return {n: torch.softmax(t, -1).cpu().numpy() for n, t in self.arch.items()}

    def fixed_weights(self, one_hots: dict[str, np.ndarray]) -> dict[str, EdgeWeights]:
        """Weights that run one given op per edge (a discrete cell inside the supernet)."""
        out = {}
        for name, oh in one_hots.items():
            w = torch.as_tensor(np.asarray(oh), dtype=torch.float32,
                                device=self.arch[name].device)
            out[name] = EdgeWeights(w, w.argmax(-1))
        return out

    # ----- classifier ---------------------------------------------------------------------
    def reset_classifier(self, num_classes: int) -> None:
        """A fresh zero-initialised classifier for a task with ``num_classes`` labels."""
        dev = self.arch_parameters()[0].device
        layer = nn.Linear(self.c_out, num_classes).to(dev)
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
        self.classifier = layer

    # ----- forward ------------------------------------------------------------------------
    def features(self, x: torch.Tensor, weights: dict[str, EdgeWeights]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, weights: dict[str, EdgeWeights] | None = None, *,
                sampling: str = "softmax", tau: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Class logits. Without ``weights``, op weights are drawn here from the logits
        (``sampling``, default a noise-free softmax), which lets ``torch.func.functional_call``
        substitute the logits along with the weights (MAML)."""
        if weights is None:
            weights = self.sample_weights(sampling, tau, generator)
        return self.classifier(self.features(x, weights))

    # ----- meta state ---------------------------------------------------------------------
    def meta_state(self) -> dict[str, torch.Tensor]:
        """Every tensor meta-learning moves: weights, logits and BatchNorm running statistics
        (everything but the per-task classifier and the integer batch counters)."""
        return {k: v for k, v in self.state_dict().items()
                if not k.startswith(CLASSIFIER_PREFIX) and v.is_floating_point()}

    def load_meta_state(self, state: dict[str, torch.Tensor]) -> None:
        own = self.state_dict()
        with torch.no_grad():
            for k, v in state.items():
                own[k].copy_(v)

    @property
    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def resolutions(self) -> tuple[int, ...]:
        return self.heads.resolutions
