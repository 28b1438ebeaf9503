"""nwot and meco of many NB201 cells in one forward pass (the re-ranks' hot path).

A re-rank scores 5-30 cells on 32-64 images of a small network (C=8, N=1, 16 px). Per cell,
building the :class:`~metanas.spaces.nb201.NB201Network` and running it with a Python hook on
every module cost ~3x the convolutions themselves. Here the cells run side by side, each owning
``C`` channels of one tensor (the layout of :mod:`metanas.training.batched`), and their ops run
once per (edge, op) for the cells that use that op there: grouped convolutions with the
cells' own weights, BatchNorm on batch statistics per channel (so per cell), pooling per channel.

What each cell gets is what its own network gives (``tests/features/test_batched_proxies.py``
checks both against hooks on :class:`NB201Network`):

* the weights its network draws at initialisation after seeding PyTorch's CPU generator with
  ``seed`` (:func:`initial_conv_weights` replays the draws in construction order with
  PyTorch's own initialiser; BatchNorm starts at weight 1, bias 0 and draws nothing);
* edges whose op is ``none`` or whose source node receives nothing are skipped, as
  :class:`~metanas.spaces.nb201.network.NB201Cell` skips them, and a cell whose output node
  receives nothing outputs zeros;
* nwot: ``log|det K|`` with ``K[i, j]`` the ReLU units (inputs of every ReLU) on which images
  i and j agree, the same integer counts;
* meco: the smallest eigenvalue of the channel correlation matrix of the first image's
  feature map at the output of every module that outputs one (4-D, two channels and two
  pixels or more), counting each module of the network: a ``Sequential``'s output is its last
  layer's, an ``Identity``'s its input, so those maps count twice.

Scores agree with the one-cell network to float rounding (grouped and plain convolution
kernels round differently, also between passes of different cell counts): ~1e-7 relative.
:class:`Recorder` holds the arithmetic of both proxies; :mod:`metanas.features.zero_cost`
also feeds it from hooks on one cell's network when that network runs anyway (for snip,
grad_norm and fisher).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metanas.spaces.nb201 import EDGES, NB201Arch
from metanas.spaces.nb201.genotype import NUM_NODES
from metanas.spaces.nb201.network import AvgPool
from metanas.training.batched import CELL_OPS, CONV_KERNELS, effective_ops

__all__ = ["BATCHED", "MAX_CELLS_AT_ONCE", "Recorder", "batched_scores", "initial_conv_weights"]

BATCHED = frozenset({"nwot", "meco"})
"""The proxies computed here (forward only, no labels)."""
MAX_CELLS_AT_ONCE = 32
"""Cells of one pass at most (a re-rank's 30 fit in one)."""
_CHUNK_ELEMENTS = 1 << 22
"""Per pass, activation elements (images x cells x channels x pixels) plus each cell's
images x images kernel: 16 MiB as float32 (a pass holds about ten such tensors at once; a
30-cell re-rank at C=8, 32 images, 16 px is 2 MiB)."""
_BN_EPS = nn.BatchNorm2d(1).eps


def initial_conv_weights(arch: NB201Arch, C: int, N: int, in_channels: int,
                         seed: int) -> dict[str, torch.Tensor]:
    """The convolution weights of ``NB201Network(arch, C=C, N=N, in_channels=...)`` built
    right after ``torch.random.default_generator.manual_seed(seed)``: its modules draw them in
    construction order (stem; each layer's convolutions in order, ops on dead edges included;
    the classifier last, not needed here). Keys: ``stem``, ``L{layer}e{edge}`` for a cell's
    conv op, ``L{layer}a`` / ``b`` / ``s`` for a reduction's two convolutions and shortcut."""
    gen = torch.Generator().manual_seed(seed)  # the CPU default generator's stream

    def draw(c_out: int, c_in: int, k: int) -> torch.Tensor:
        w = torch.empty(c_out, c_in, k, k)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)  # as nn.Conv2d draws it
        return w

    out = {"stem": draw(C, in_channels, 3)}
    c, layer = C, 0
    for stage in range(3):
        if stage > 0:
            out[f"L{layer}a"] = draw(2 * c, c, 3)
            out[f"L{layer}b"] = draw(2 * c, 2 * c, 3)
            out[f"L{layer}s"] = draw(2 * c, c, 1)
            c *= 2
            layer += 1
        for _ in range(N):
            for e, op in enumerate(arch.ops):
                if op in CONV_KERNELS:
                    out[f"L{layer}e{e}"] = draw(c, c, CONV_KERNELS[op])
            layer += 1
    return out


class Recorder:
    """nwot kernels and meco terms of ``cells`` cells, fed the ReLU inputs and module outputs
    of a pass (of several cells side by side, or of one network through hooks)."""

    def __init__(self, cells: int, images: int, nwot: bool, meco: bool) -> None:
        self.kernel = torch.zeros(cells, images, images, dtype=torch.float64) if nwot else None
        self.meco = meco
        # per map shape: (cells, their correlation matrices (S, c, c) in float64, count)
        self.corrs: dict[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor, int]]] = {}

    def relu_input(self, x: torch.Tensor, cells: torch.Tensor) -> None:
        """The input of a ReLU: (images, S * c, H, W), cell ``cells[s]`` owning channels
        ``s*c .. (s+1)*c - 1``."""
        if self.kernel is None:
            return
        b = x.shape[0]
        codes = (x.reshape(b, len(cells), -1) > 0).transpose(0, 1).float()  # (S, b, units)
        on = codes.sum(2)
        # units on which images i and j agree: c c^T + (1-c)(1-c)^T = 2 c c^T - s_i - s_j + F,
        # exact integers in float32 below 2**24 units
        agree = 2.0 * torch.bmm(codes, codes.transpose(1, 2)) - on[:, :, None] \
            - on[:, None, :] + codes.shape[2]
        self.kernel.index_add_(0, cells, agree.double())

    def output(self, x: torch.Tensor, cells: torch.Tensor, count: int = 1) -> None:
        """A module output (laid out as for :meth:`relu_input`), counted ``count`` times:
        the channel correlation matrix of the first image's map is kept (as torch.corrcoef,
        undefined correlations of a constant channel as 0)."""
        if not self.meco:
            return
        c = x.shape[1] // len(cells)
        if c < 2 or x.shape[-2:].numel() < 2:  # no correlation matrix
            return
        m = x[0].detach().reshape(len(cells), c, -1).double()
        m = m - m.mean(-1, keepdim=True)
        cov = m @ m.transpose(1, 2)
        d = torch.diagonal(cov, dim1=1, dim2=2).sqrt()
        corr = (cov / d[:, :, None] / d[:, None, :]).clamp(-1.0, 1.0)
        corr = torch.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0)
        self.corrs.setdefault(tuple(m.shape[1:]), []).append((cells, corr, count))

    def nwot_scores(self) -> torch.Tensor:
        assert self.kernel is not None
        sign, logdet = np.linalg.slogdet(self.kernel.numpy())
        return torch.from_numpy(np.where(sign > 0, logdet, -np.inf))

    def meco_scores(self, cells: int) -> torch.Tensor:
        """Per cell, the sum of its outputs' smallest correlation eigenvalues (finite ones);
        matrices of one shape share one batched eigen-decomposition."""
        total = torch.zeros(cells, dtype=torch.float64)
        for same in self.corrs.values():
            low = torch.linalg.eigvalsh(torch.cat([m for _, m, _ in same]))[:, 0]
            low = torch.where(torch.isfinite(low), low, torch.zeros_like(low))
            counts = torch.cat([torch.full((len(c),), float(n), dtype=torch.float64)
                                for c, _, n in same])
            total.index_add_(0, torch.cat([c for c, _, _ in same]), low * counts)
        return total


def _channels(cells: torch.Tensor, c: int) -> torch.Tensor:
    return (cells[:, None] * c + torch.arange(c)).flatten()


def _bn(x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, None, None, training=True, eps=_BN_EPS)


def _grouped_conv(x: torch.Tensor, w: torch.Tensor, groups: int, stride: int = 1) -> torch.Tensor:
    """Each cell's convolution of its own channels; a 1x1 one as a batched matrix product
    (PyTorch's grouped 1x1 convolution is ~8x slower on a CPU at 16 px)."""
    k = w.shape[-1]
    if k == 1 and stride == 1:
        b, _, height, width = x.shape
        c_out, c_in = w.shape[0] // groups, w.shape[1]
        y = torch.matmul(w.view(groups, c_out, c_in), x.reshape(b, groups, c_in, -1))
        return y.view(b, groups * c_out, height, width)
    return F.conv2d(x, w, stride=stride, padding=k // 2, groups=groups)


def _relu_conv_bn(x: torch.Tensor, w: torch.Tensor, cells: torch.Tensor, rec: Recorder,
                  stride: int = 1) -> torch.Tensor:
    """NB201's ReLUConvBN for the cells ``cells`` (their channels of ``x``, in order): ReLU,
    Conv, BN and the Sequential (the BN's map again)."""
    rec.relu_input(x, cells)
    r = F.relu(x)
    rec.output(r, cells)
    h = _grouped_conv(r, w, len(cells), stride)
    rec.output(h, cells)
    h = _bn(h)
    rec.output(h, cells, count=2)
    return h


def _pass(archs: Sequence[NB201Arch], x: torch.Tensor, C: int, N: int, seed: int,
          rec: Recorder) -> None:
    K = len(archs)
    every = torch.arange(K)
    weights = [initial_conv_weights(a, C, N, x.shape[1], seed) for a in archs]
    eff = [effective_ops(a) for a in archs]

    def stacked(key: str, cells: Sequence[int]) -> torch.Tensor:
        return torch.cat([weights[i][key] for i in cells])

    h = F.conv2d(x, stacked("stem", range(K)), padding=1)
    rec.output(h, every)
    h = _bn(h)
    rec.output(h, every, count=2)  # the BN and the stem's Sequential
    pool3, pool2 = AvgPool(3, stride=1, padding=1), AvgPool(2, stride=2)
    inputs = [[k for k, (to, _) in enumerate(EDGES) if to == node] for node in range(NUM_NODES)]
    c, layer = C, 0
    for stage in range(3):
        if stage > 0:  # the residual reduction c -> 2c
            a = _relu_conv_bn(h, stacked(f"L{layer}a", range(K)), every, rec, stride=2)
            b = _relu_conv_bn(a, stacked(f"L{layer}b", range(K)), every, rec)
            s = pool2(h)
            rec.output(s, every)
            s = _grouped_conv(s, stacked(f"L{layer}s", range(K)), K)
            rec.output(s, every, count=2)  # the conv and the shortcut's Sequential
            h = s + b
            rec.output(h, every)
            c *= 2
            layer += 1
        for _ in range(N):
            nodes = [h]
            for node in range(1, NUM_NODES):
                total = torch.zeros_like(h)
                for e in inputs[node]:
                    src = nodes[EDGES[e][1]]
                    for op in CELL_OPS:
                        users = [i for i in range(K) if eff[i][e] == op]
                        if not users:
                            continue
                        cells = torch.tensor(users)
                        ch = None if len(users) == K else _channels(cells, c)
                        part = src if ch is None else src.index_select(1, ch)
                        if op == "skip_connect":
                            out = part
                            rec.output(out, cells)  # the Identity
                        elif op == "avg_pool_3x3":
                            out = pool3(part)
                            rec.output(out, cells)
                        else:
                            out = _relu_conv_bn(part, stacked(f"L{layer}e{e}", users), cells, rec)
                        if ch is None:
                            total += out
                        else:
                            total.index_add_(1, ch, out)
                nodes.append(total)
            h = nodes[-1]  # zeros for a cell whose output node receives nothing
            rec.output(h, every)
            layer += 1
    rec.output(h, every)  # the Sequential of all layers: the last cell's map again
    h = _bn(h)
    rec.output(h, every)
    rec.relu_input(h, every)
    h = F.relu(h)
    rec.output(h, every, count=2)  # the ReLU and the head's Sequential


@torch.no_grad()
def batched_scores(archs: Sequence[NB201Arch], x: torch.Tensor, *, C: int, N: int, seed: int,
                   proxies: Sequence[str]) -> dict[str, np.ndarray]:
    """``{proxy: scores of archs, in order}`` for the proxies of :data:`BATCHED` in
    ``proxies``, on the float images ``x`` (B, channels, H, W); non-finite scores are
    ``-inf``. Cells run in chunks of at most :data:`_CHUNK_ELEMENTS` activation elements."""
    want = [p for p in proxies if p in BATCHED]
    per_cell = len(x) * (C * x.shape[-2] * x.shape[-1] + len(x))
    chunk = max(1, min(MAX_CELLS_AT_ONCE, _CHUNK_ELEMENTS // per_cell))
    out: dict[str, list[np.ndarray]] = {p: [] for p in want}
    for start in range(0, len(archs), chunk):
        part = archs[start:start + chunk]
        rec = Recorder(len(part), len(x), "nwot" in want, "meco" in want)
        _pass(part, x, C, N, seed, rec)
        if "nwot" in want:
            out["nwot"].append(rec.nwot_scores().numpy())
        if "meco" in want:
            out["meco"].append(rec.meco_scores(len(part)).numpy())
    return {p: np.where(np.isfinite(v := np.concatenate(out[p])), v, -np.inf) for p in want}
