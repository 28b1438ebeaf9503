"""The DARTS supernet: DARTS cells (4 intermediate nodes, inputs = the two previous cells,
14 mixed edges over 8 ops) with separate ``normal`` and ``reduce`` logit tables.

Ops follow DARTS' search network: pooling followed by a non-affine BatchNorm, separable and
dilated convolutions, skip (a factorized reduction when strided) and ``none``. The cell
preprocessing reuses NB201's ``ReLUConvBN``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from metanas.errors import ConfigError
from metanas.spaces.darts import NUM_EDGES, OPS, STEPS
from metanas.spaces.nb201.network import AvgPool, ReLUConvBN
from metanas.supernet.mixed import EdgeWeights, MixedOp, Zero
from metanas.supernet.supernet import Supernet


class SepConv(nn.Sequential):
    """DARTS' separable convolution: (ReLU, depthwise kxk, pointwise 1x1, BN) twice."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False), nn.BatchNorm2d(c_in, affine=False),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, 1, pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, affine=False),
        )


class DilConv(nn.Sequential):
    """DARTS' dilated separable convolution (dilation 2)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, kernel - 1, dilation=2, groups=c_in,
                      bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, affine=False),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convolutions (DARTS)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        y = x[:, :, 1:, 1:] if x.shape[-1] > 1 else x
        y = nn.functional.pad(y, (0, x.shape[-1] - y.shape[-1], 0, x.shape[-2] - y.shape[-2]))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(y)], dim=1))


def darts_op(name: str, channels: int, stride: int) -> nn.Module:
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.Sequential(nn.MaxPool2d(3, stride, 1), nn.BatchNorm2d(channels, affine=False))
    if name == "avg_pool_3x3":
        return nn.Sequential(AvgPool(3, stride, 1),
                             nn.BatchNorm2d(channels, affine=False))
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    if name.startswith("sep_conv_"):
        return SepConv(channels, channels, int(name[-1]), stride)
    if name.startswith("dil_conv_"):
        return DilConv(channels, channels, int(name[-1]), stride)
    raise ValueError(f"no module for DARTS op {name!r}")


class DartsSearchCell(nn.Module):
    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
                 steps: int = STEPS, multiplier: int = STEPS) -> None:
        super().__init__()
        self.reduction = reduction
        self.steps, self.multiplier = steps, multiplier
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1)
        self.pre1 = ReLUConvBN(c_p, c, 1)
        self.edges = nn.ModuleList()
        for i in range(steps):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(MixedOp([darts_op(op, c, stride) for op in OPS]))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, w: EdgeWeights) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for _ in range(self.steps):
            total = None
            for h in states:
                act = None if w.active is None else int(w.active[e])
                out = self.edges[e](h, w.weights[e], act)
                total = out if total is None else total + out
                e += 1
            states.append(total)
        return torch.cat(states[-self.multiplier:], dim=1)


class DartsSupernet(Supernet):
    """Heads (to ``stem_multiplier * C`` channels) -> ``layers`` DARTS cells, reductions at
    1/3 and 2/3 of the depth -> global pool -> per-task classifier."""

    space = "darts"
    ops = OPS

    def __init__(self, *, C: int = 8, layers: int = 5, resolutions: tuple[int, ...] = (16, 32),
                 feature_size: int = 16, stem_multiplier: int = 3, num_classes: int = 2) -> None:
        if C < 2 or layers < 1:
            raise ConfigError(f"DARTS supernet needs C >= 2 and layers >= 1, got C={C} "
                              f"layers={layers}")
        super().__init__(resolutions=resolutions, feature_size=feature_size,
                         c_stem=stem_multiplier * C)
        self._config = {"space": self.space, "C": int(C), "layers": int(layers),
                        "resolutions": list(self.heads.resolutions),
                        "feature_size": int(feature_size), "stem_multiplier": stem_multiplier}
        c_pp = c_p = stem_multiplier * C
        c = C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3) and layers >= 3
            if reduction:
                c *= 2
            cell = DartsSearchCell(c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, STEPS * c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.c_out = c_p
        self.add_table("normal", NUM_EDGES)
        self.add_table("reduce", NUM_EDGES)
        self.reset_classifier(num_classes)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def features(self, x: torch.Tensor, weights: dict[str, EdgeWeights]) -> torch.Tensor:
        s0 = s1 = self.heads(x)
        for cell in self.cells:
            w = weights["reduce" if cell.reduction else "normal"]
            s0, s1 = s1, cell(s0, s1, w)
        return self.pool(s1).flatten(1)
