"""Per-resolution input heads: each input size gets its own (unshared) featurization that
brings it to one common feature-map size, so one shared cell stack serves every resolution.

A head for resolution ``r`` and feature size ``f`` (``r = f * 2^k``) is ``k`` stride-2
Conv3x3-BN-ReLU blocks followed by NB201's stem (Conv3x3 + BN); for ``r == f`` it is exactly
the NB201 stem. Inputs with one channel are repeated to three first, so grayscale and colour
tasks share the heads (the choice this package makes over one head per channel count).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from metanas.errors import ConfigError

HEAD_CHANNELS = 3


class RepeatChannels(nn.Module):
    """(N, 1, H, W) -> (N, 3, H, W) by repetition; 3-channel inputs pass through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == HEAD_CHANNELS:
            return x
        if x.shape[1] == 1:
            return x.expand(-1, HEAD_CHANNELS, -1, -1)
        raise ConfigError(f"inputs must have 1 or {HEAD_CHANNELS} channels, got {x.shape[1]}")


def head_strides(resolution: int, feature_size: int) -> int:
    """How many stride-2 stages bring ``resolution`` down to ``feature_size``."""
    k = math.log2(resolution / feature_size) if resolution > 0 and feature_size > 0 else -1
    if k < 0 or not float(k).is_integer():
        raise ConfigError(f"head resolution {resolution} must be feature_size ({feature_size}) "
                          f"times a power of 2")
    return int(k)


def make_head(resolution: int, feature_size: int, c_out: int) -> nn.Sequential:
    layers: list[nn.Module] = [RepeatChannels()]
    c_in = HEAD_CHANNELS
    for _ in range(head_strides(resolution, feature_size)):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=False)]
        c_in = c_out
    layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers)


class InputHeads(nn.Module):
    """One head per input resolution; the input's side picks the head."""

    def __init__(self, resolutions: tuple[int, ...], feature_size: int, c_out: int) -> None:
        super().__init__()
        if not resolutions:
            raise ConfigError("a supernet needs at least one head resolution")
        self.resolutions = tuple(sorted(int(r) for r in resolutions))
        self.feature_size = int(feature_size)
        self.heads = nn.ModuleDict({str(r): make_head(r, feature_size, c_out)
                                    for r in self.resolutions})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_for(x.shape[-1])(x)

    def head_for(self, resolution: int) -> nn.Module:
        key = str(int(resolution))
        if key not in self.heads:
            raise ConfigError(f"no input head for {resolution} px; the supernet has heads for "
                              f"{list(self.resolutions)} px")
        return self.heads[key]
