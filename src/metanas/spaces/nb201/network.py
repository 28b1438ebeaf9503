"""The NB201 network that runs a cell: exact NB201 ops inside the NB201 macro skeleton.

Skeleton: stem Conv3x3(C)+BN; three stages of N cells at C, 2C, 4C channels separated by residual
reduction blocks; BN-ReLU, global average pooling, linear classifier. ``C``, ``N``, input channels
and class count are parameters so the same code builds the CPU proxies and the full NB201 net
(C=16, N=5).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from metanas.errors import ConfigError
from metanas.spaces.nb201.genotype import EDGES, NUM_NODES, NB201Arch, parse

SIDE_DIVISOR = 4
"""An input side the skeleton takes must divide by this: each of its two reductions pools the
shortcut with floor (``AvgPool(2, stride=2)``) and convolves with ceil (stride 2, padding 1),
so an odd side there leaves the two branches one pixel apart."""


def nb201_side(side: int) -> int:
    """The largest side <= ``side`` the skeleton takes (at least :data:`SIDE_DIVISOR`)."""
    return max(SIDE_DIVISOR, side - side % SIDE_DIVISOR)


def check_side(side: int, what: str = "resolution") -> None:
    """A clear error instead of a shape mismatch deep in the network."""
    if side < SIDE_DIVISOR or side % SIDE_DIVISOR:
        raise ConfigError(f"{what} {side} px: an NB201 network needs an image side divisible "
                          f"by {SIDE_DIVISOR} (it halves it twice), e.g. {nb201_side(side)}")


class ReLUConvBN(nn.Sequential):
    """NB201's ``nor_conv_kxk``: ReLU -> Conv(no bias) -> BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class AvgPool(nn.Module):
    """Average pooling that does not count padding (``nn.AvgPool2d(..., count_include_pad=False)``)
    computed as a depthwise convolution of ones divided by each window's size: the same numbers
    up to float rounding, and 2-4x faster forward+backward on a CPU, where PyTorch's pooling
    kernel is slower than a 3x3 convolution (``benchmarks/avg_pool.py``). No parameters, so
    state dicts are unchanged."""

    def __init__(self, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, p = self.kernel, self.stride, self.padding
        if torch.jit.is_tracing():  # TorchScript / ONNX export: the standard pooling op
            return F.avg_pool2d(x, k, s, p, count_include_pad=False)
        ones = x.new_ones(x.shape[1], 1, k, k)
        total = F.conv2d(x, ones, stride=s, padding=p, groups=x.shape[1])
        if p == 0:
            return total / (k * k)
        return total / (self._window(x.shape[-2], total.shape[-2], x)[:, None]
                        * self._window(x.shape[-1], total.shape[-1], x)[None, :])

    def _window(self, size: int, out: int, like: torch.Tensor) -> torch.Tensor:
        """How many input positions each output position's window covers along one axis."""
        start = torch.arange(out, device=like.device) * self.stride - self.padding
        return ((start + self.kernel).clamp(max=size) - start.clamp(min=0)).to(like.dtype)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding={self.padding}"


def make_op(name: str, channels: int) -> nn.Module:
    """A cell op by NB201 name (``none`` is handled by the cell: it is dropped)."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return AvgPool(3, stride=1, padding=1)
    raise ValueError(f"no module for op {name!r}")


class NB201Cell(nn.Module):
    """A discrete cell; ``none`` edges are omitted since they add zeros."""

    def __init__(self, arch: NB201Arch, channels: int) -> None:
        super().__init__()
        self.arch = arch
        self.edges = nn.ModuleDict()
        self._inputs: list[list[tuple[str, int]]] = [[] for _ in range(NUM_NODES)]
        for (to, src), op in zip(EDGES, arch.ops, strict=True):
            if op == "none":
                continue
            key = f"{to}<-{src}"
            self.edges[key] = make_op(op, channels)
            self._inputs[to].append((key, src))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x]
        for to in range(1, NUM_NODES):
            total = None
            for key, src in self._inputs[to]:
                if nodes[src] is None:
                    continue
                out = self.edges[key](nodes[src])
                total = out if total is None else total + out
            nodes.append(total)
        return nodes[-1] if nodes[-1] is not None else torch.zeros_like(x)


class ResidualReduction(nn.Module):
    """NB201's reduction block: ReLU-Conv3x3 s2-BN, ReLU-Conv3x3-BN, AvgPool2+Conv1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            AvgPool(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def nb201_stages(C: int, N: int, cell: Callable[[int], nn.Module],
                 reduction: Callable[[int, int], nn.Module]) -> tuple[list[nn.Module], int]:
    """NB201's skeleton between stem and head: three stages of ``N`` cells at C, 2C and 4C
    channels with a reduction (``c -> 2c``) before the second and third. One builder for
    the network, the supernet and the batched network; returns the layers and the last
    width."""
    layers: list[nn.Module] = []
    c = C
    for stage in range(3):
        if stage > 0:
            layers.append(reduction(c, 2 * c))
            c *= 2
        layers.extend(cell(c) for _ in range(N))
    return layers, c


def nb201_stem(in_channels: int, C: int, strides: int = 0) -> nn.Sequential:
    """NB201's stem (Conv3x3 + BN), after ``strides`` stride-2 Conv3x3-BN-ReLU blocks: the
    layout of a BASE supernet's input head for ``feature_size * 2**strides`` px inputs
    (:mod:`metanas.supernet.heads`), so a network cut out of an adapted supernet keeps it."""
    layers: list[nn.Module] = []
    c_in = in_channels
    for _ in range(strides):
        layers += [nn.Conv2d(c_in, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C),
                   nn.ReLU(inplace=False)]
        c_in = C
    layers += [nn.Conv2d(c_in, C, 3, padding=1, bias=False), nn.BatchNorm2d(C)]
    return nn.Sequential(*layers)


class NB201Network(nn.Module):
    """NB201 macro skeleton around one cell type."""

    def __init__(
        self,
        arch: NB201Arch | str,
        *,
        C: int = 16,
        N: int = 5,
        in_channels: int = 3,
        num_classes: int = 10,
        stem_strides: int = 0,
    ) -> None:
        super().__init__()
        if C < 1 or N < 1 or in_channels < 1 or num_classes < 2 or stem_strides < 0:
            raise ValueError(f"invalid sizes C={C} N={N} in={in_channels} classes={num_classes} "
                             f"stem_strides={stem_strides}")
        self.arch = parse(arch)
        self.config = {"C": C, "N": N, "in_channels": in_channels, "num_classes": num_classes}
        if stem_strides:  # only then: configs of plain NB201 networks stay as they were
            self.config["stem_strides"] = stem_strides
        self.stem = nb201_stem(in_channels, C, stem_strides)
        layers, c = nb201_stages(C, N, lambda c: NB201Cell(self.arch, c), ResidualReduction)
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.head(self.cells(self.stem(x)))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int, in_channels: int | None = None) -> int:
    """Multiply-accumulates of one forward pass on one image (convolutions and linear layers)."""
    if in_channels is None:
        in_channels = getattr(model, "config", {}).get("in_channels", 3)
    total = 0

    def conv_hook(mod: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        total += out[0].numel() * k

    def linear_hook(mod: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += mod.in_features * mod.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, input_size, input_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return int(total)
