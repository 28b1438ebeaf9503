"""The NB201 supernet: NB201's macro skeleton with a mixed op on every cell edge.

One logits table ``cell`` (6 edges x 5 ops) drives every cell, as in NB201's own DARTS/GDAS
runs. Cell ops are the very modules of :mod:`metanas.spaces.nb201.network` (``make_op``,
``ResidualReduction``), so a discrete cell cut out of the supernet (:meth:`export_network`) is an
:class:`~metanas.spaces.nb201.NB201Network` computing the same function with the same weights.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from metanas.errors import ConfigError
from metanas.spaces.nb201 import EDGES, NB201Arch, NB201Network, parse
from metanas.spaces.nb201.genotype import NUM_NODES, OPS
from metanas.spaces.nb201.network import NB201Cell, ResidualReduction, make_op, nb201_stages
from metanas.supernet.heads import HEAD_CHANNELS, head_strides
from metanas.supernet.mixed import EdgeWeights, MixedOp, Zero
from metanas.supernet.supernet import Supernet

TABLE = "cell"


class NB201SearchCell(nn.Module):
    """An NB201 cell whose 6 edges are mixed ops over the 5 NB201 ops."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            MixedOp([Zero() if op == "none" else make_op(op, channels) for op in OPS])
            for _ in EDGES
        )

    def forward(self, x: torch.Tensor, w: EdgeWeights) -> torch.Tensor:
        nodes = [x]
        e = 0
        for to in range(1, NUM_NODES):
            total = None
            for src in range(to):
                act = None if w.active is None else int(w.active[e])
                out = self.edges[e](nodes[src], w.weights[e], act)
                total = out if total is None else total + out
                e += 1
            nodes.append(total)
        return nodes[-1]


class NB201Supernet(Supernet):
    """Heads -> three stages of ``N`` search cells (C, 2C, 4C) with NB201 residual reductions
    -> BN-ReLU -> global pool -> per-task classifier."""

    space = "nb201"
    ops = OPS

    def __init__(self, *, C: int = 8, N: int = 1, resolutions: tuple[int, ...] = (16, 32),
                 feature_size: int = 16, num_classes: int = 2) -> None:
        if C < 1 or N < 1:
            raise ConfigError(f"NB201 supernet needs C >= 1 and N >= 1, got C={C} N={N}")
        super().__init__(resolutions=resolutions, feature_size=feature_size, c_stem=C)
        self._config = {"space": self.space, "C": int(C), "N": int(N),
                        "resolutions": list(self.heads.resolutions),
                        "feature_size": int(feature_size)}
        layers, c = nb201_stages(C, N, NB201SearchCell, ResidualReduction)
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.c_out = c
        self.add_table(TABLE, len(EDGES))
        self.reset_classifier(num_classes)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def features(self, x: torch.Tensor, weights: dict[str, EdgeWeights]) -> torch.Tensor:
        h = self.heads(x)
        w = weights[TABLE]
        for layer in self.cells:
            h = layer(h, w) if isinstance(layer, NB201SearchCell) else layer(h)
        return self.pool(self.lastact(h)).flatten(1)

    def arch_weights_for(self, arch: NB201Arch | str) -> dict[str, EdgeWeights]:
        """Weights that run exactly ``arch`` inside the supernet."""
        return self.fixed_weights({TABLE: parse(arch).one_hot()})

    def export_network(self, arch: NB201Arch | str, resolution: int,
                       in_channels: int | None = None) -> NB201Network:
        """The discrete :class:`NB201Network` of ``arch`` with this supernet's weights (the
        head for ``resolution`` as its stem, the current classifier), on the CPU.

        ``in_channels`` (1 or 3): a plain NB201Network instead, whose stem is the head as
        ``stem_strides`` stride-2 blocks plus NB201's stem, for inputs of that many channels
        (a 1-channel input's repetition to 3 folded into the first convolution: the same
        function); it saves and loads as any NB201 model (:mod:`metanas.training.saved`).
        Without it the stem is the head module itself (it repeats 1-channel inputs)."""
        arch = parse(arch)
        cfg = self._config
        head = self.heads.head_for(resolution)
        if in_channels is None:
            net = NB201Network(arch, C=cfg["C"], N=cfg["N"], in_channels=3,
                               num_classes=self.classifier.out_features)
            net.stem = copy.deepcopy(head).cpu()
        else:
            if in_channels not in (1, HEAD_CHANNELS):
                raise ConfigError(f"the supernet's heads take 1 or {HEAD_CHANNELS} channels, "
                                  f"got {in_channels}")
            strides = head_strides(int(resolution), self.heads.feature_size)
            net = NB201Network(arch, C=cfg["C"], N=cfg["N"], in_channels=in_channels,
                               num_classes=self.classifier.out_features, stem_strides=strides)
            state = {k: v.detach().cpu().clone() for k, v in
                     nn.Sequential(*list(head)[1:]).state_dict().items()}  # RepeatChannels off
            if in_channels == 1:  # conv(repeat(x), w) == conv(x, w summed over its inputs)
                state["0.weight"] = state["0.weight"].sum(1, keepdim=True)
            net.stem.load_state_dict(state)
        for mine, theirs in zip(self.cells, net.cells, strict=True):
            if isinstance(theirs, ResidualReduction):
                theirs.load_state_dict(mine.state_dict())
                continue
            assert isinstance(theirs, NB201Cell)
            for e, ((to, src), op) in enumerate(zip(EDGES, arch.ops, strict=True)):
                if op != "none":
                    theirs.edges[f"{to}<-{src}"].load_state_dict(
                        mine.edges[e].ops[OPS.index(op)].state_dict())
        net.head.load_state_dict(self.lastact.state_dict())
        net.classifier.load_state_dict(self.classifier.state_dict())
        net.config["resolution"] = int(resolution)
        return net.cpu().eval()
