"""Training-free (zero-cost) proxies: score an NB201 cell at initialisation on a task's images.

Every proxy is oriented so that *higher predicts better*, as in NASLib. The network is
:class:`~metanas.spaces.nb201.NB201Network` at a chosen size (``C``, ``N``; default NB201's 16, 5)
at the task's resolution, initialised after seeding PyTorch's CPU generator with ``seed`` (its
default init),
in training mode (BatchNorm uses batch statistics), scored on one seeded batch of the task's
training images (:func:`proxy_batch`). Same seed, same cell, same task: same scores.

Proxies (``w``: the weights of every Conv2d and Linear layer; ``L``: mean cross-entropy):

* ``nwot`` (Mellor et al. 2021, v2): ``log|det K|`` with ``K[i, j]`` the number of ReLU units
  (inputs of every ReLU) on which images ``i`` and ``j`` have the same on/off state.
* ``synflow`` (Tanaka et al. 2020): ``sum |w * dR/dw|`` with ``R`` the sum of the outputs of the
  network without BatchNorm, with ``|w|`` for every parameter, on one all-ones image, in double.
  Reported as its natural log (a monotone transform; the raw sum reaches 1e40 at C=16, N=5).
* ``snip`` (Lee et al. 2019): ``sum |w * dL/dw|``.
* ``grad_norm``: the sum over layers of ``||dL/dw||_2``.
* ``fisher`` (Turner et al. 2020, as in Abdelfattah et al. 2021): per output channel of every
  Conv2d/Linear, ``0.5 * mean_n (sum_spatial a * dL/da)^2`` with ``a`` the layer's output,
  counted once per weight of that channel (as Abdelfattah et al. broadcast it), summed.
* ``grasp`` (Wang et al. 2020): ``sum -w * (H g)`` with ``g = dL/dw`` and ``H`` the Hessian of
  ``L``.
* ``jacov`` (Mellor et al. 2020, v1): with ``J`` the gradient of the summed logits w.r.t. each
  input image, ``-sum_k log(v_k + 1e-5) + 1 / (v_k + 1e-5)`` over the eigenvalues ``v`` of the
  correlation matrix of the images' ``J``.
* ``zico`` (Li et al. ICLR 2023): the batch split into ``zico_batches`` parts;
  ``sum_layers log(sum_weights mean|g| / std g)`` over the parts' gradients (weights whose
  gradient does not vary are left out; a layer whose sum is 0 adds nothing).
* ``meco`` (Jiang et al. NeurIPS 2023): ``sum_layers min eig P_l`` with ``P_l`` the Pearson
  correlation matrix between the channels of the first image's feature map at the output of
  every module that outputs one (4-D, at least two channels and two pixels), undefined
  correlations (a constant channel) set to 0, as the authors' code does; one forward pass.
* ``params``, ``flops``: :func:`~metanas.spaces.nb201.count_params` and
  :func:`~metanas.spaces.nb201.count_macs` (multiply-accumulates of one image), raw counts.

Passes are shared where the computation is identical: ``nwot`` and ``meco`` of the cells
scored together come from one forward pass of the cells side by side
(:mod:`metanas.features.batched_proxies`; each cell reports its share of that pass's
seconds), unless ``snip``, ``grad_norm`` or ``fisher`` are asked for too: then all five come
from one forward/backward pass of each cell's network (each reports that pass's seconds;
BatchNorm in training mode normalises by the batch either way); ``params`` and ``flops`` from
one count.

Degenerate inputs (documented behaviour, see docs/zero_cost.md):

* a batch with one class and a loss-based proxy (snip, grad_norm, fisher, grasp, zico): DatasetError;
* a batch of identical images (e.g. a constant dataset) and a data-dependent proxy (all but params,
  flops, synflow): DatasetError;
* images under 4 px, a batch under 2 images, an unknown proxy: ConfigError;
* a score that is not finite (a cell with no path from input to output: nwot's ``K`` is singular,
  synflow's sum is 0, jacov's correlations are undefined; or an overflow) is reported as ``-inf``,
  so it ranks last, and the proxy is named in the cell's ``nonfinite`` list. Never NaN.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metanas.errors import ConfigError, DatasetError
from metanas.features.batched_proxies import BATCHED, MAX_CELLS_AT_ONCE, Recorder, batched_scores
from metanas.spaces.nb201 import NB201Arch, NB201Network, count_macs, count_params, parse
from metanas.spaces.nb201.network import check_side
from metanas.tasks import Task
from metanas.threads import single_threaded

__all__ = [
    "DATA_FREE", "LABEL_FREE", "PROXIES", "ZeroCostConfig", "check_proxies", "proxy_batch",
    "score_batch", "score_cell", "score_cells",
]

PROXIES: tuple[str, ...] = (
    "nwot", "synflow", "snip", "grad_norm", "jacov", "fisher", "grasp", "zico", "meco", "params",
    "flops",
)
"""Every proxy, in the order results list them."""
DATA_FREE = frozenset({"synflow", "params", "flops"})
"""Proxies that do not look at the images."""
LABEL_FREE = DATA_FREE | {"nwot", "jacov", "meco"}
"""Proxies that do not use the labels."""
MIN_RESOLUTION = 4
"""The NB201 skeleton halves the image twice; below 4 px its last shortcut pool has no input."""
JACOV_EPS = 1e-5
_SHARED = ("nwot", "snip", "grad_norm", "fisher", "meco")
_LOSS_PASS = ("snip", "grad_norm", "fisher")


@dataclass(frozen=True)
class ZeroCostConfig:
    """What determines a cell's scores besides the cell and the task."""

    C: int = 16
    """Network width (NB201's own size by default; scores are taken on that network)."""
    N: int = 5
    batch_size: int = 64
    """Images in the seeded batch every proxy sees."""
    seed: int = 0
    zico_batches: int = 2
    """ZiCo's gradient statistics need at least two batches."""

    def __post_init__(self) -> None:
        for name, low in (("C", 1), ("N", 1), ("batch_size", 2), ("zico_batches", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"zero-cost {name} must be an integer >= {low}, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"zero-cost seed must be a non-negative integer, got {self.seed!r}")
        if self.zico_batches > self.batch_size:
            raise ConfigError(f"zico_batches ({self.zico_batches}) must not exceed batch_size "
                              f"({self.batch_size})")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def check_proxies(proxies: str | Iterable[str] | None) -> tuple[str, ...]:
    """Proxy names (a comma-separated string or a list; ``None``: all), validated, in order given."""
    if proxies is None:
        return PROXIES
    names = proxies.split(",") if isinstance(proxies, str) else list(proxies)
    names = [str(n).strip().lower().replace("-", "_") for n in names]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise ConfigError(f"unknown zero-cost prox{'y' if len(unknown) == 1 else 'ies'} "
                          f"{', '.join(map(repr, unknown))}; available: {', '.join(PROXIES)}")
    if not names:
        raise ConfigError(f"no zero-cost proxy given; available: {', '.join(PROXIES)}")
    return tuple(dict.fromkeys(names))


def proxy_batch(task: Task, batch_size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` training images of ``task`` (all if fewer), drawn without replacement by
    ``seed``; the same for every cell so that cells are compared on the same images."""
    n = len(task.y_train)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(13,)))
    idx = torch.from_numpy(rng.permutation(n)[: min(batch_size, n)])
    return task.x_train[idx], task.y_train[idx]


def score_cells(
    task: Task,
    archs: Sequence[NB201Arch | str],
    *,
    proxies: str | Iterable[str] | None = None,
    config: ZeroCostConfig | None = None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Score every cell of ``archs`` on one seeded batch of ``task`` (see :func:`score_batch`);
    ``progress(done, total, last_result)`` is called after each cell."""
    config = config or ZeroCostConfig()
    names = check_proxies(proxies)
    x, y = proxy_batch(task, config.batch_size, config.seed)
    _check_batch(x, y, names)
    return score_batch(archs, x, y, num_classes=task.num_classes, proxies=names, config=config,
                       progress=progress, checked=True)


def score_cell(
    arch: NB201Arch | str,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    proxies: str | Iterable[str] | None = None,
    config: ZeroCostConfig | None = None,
    checked: bool = False,
) -> dict[str, Any]:
    """Scores of one cell on the batch ``(x, y)`` (x: float (B, C, R, R), y: int64 labels).

    Returns ``{"arch", "scores": {proxy: float}, "seconds": {proxy: float}, "seconds_total",
    "nonfinite": [proxy, ...]}``; see the module docstring for the proxies and for ``-inf``.
    """
    return score_batch([arch], x, y, num_classes=num_classes, proxies=proxies, config=config,
                       checked=checked)[0]


def score_batch(
    archs: Sequence[NB201Arch | str],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    proxies: str | Iterable[str] | None = None,
    config: ZeroCostConfig | None = None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
    checked: bool = False,
) -> list[dict[str, Any]]:
    """:func:`score_cell` for every cell of ``archs``, in order; ``progress(done, total,
    last_result)`` after each cell. nwot and meco of up to
    :data:`~metanas.features.batched_proxies.MAX_CELLS_AT_ONCE` cells come from one pass of
    the cells side by side (their seconds: each cell's share of it), unless snip, grad_norm
    or fisher are asked for too: then from the forward pass each cell's network runs for
    them anyway. The other proxies run cell by cell."""
    config = config or ZeroCostConfig()
    names = check_proxies(proxies)
    cells = [parse(a) for a in archs]
    if not checked:
        _check_batch(x, y, names)
    if num_classes < 2:
        raise ConfigError(f"zero-cost proxies need at least 2 classes, got {num_classes}")
    x = x.float()
    y = y.long()
    together = ([] if any(p in names for p in _LOSS_PASS)
                else [p for p in names if p in BATCHED])
    alone = [p for p in names if p not in together]
    out: list[dict[str, Any]] = []
    for start in range(0, len(cells), MAX_CELLS_AT_ONCE):
        group = cells[start:start + MAX_CELLS_AT_ONCE]
        shared: dict[str, np.ndarray] = {}
        share = 0.0
        if together:
            t0 = time.perf_counter()
            with single_threaded():
                shared = batched_scores(group, x, C=config.C, N=config.N, seed=config.seed,
                                        proxies=together)
            share = (time.perf_counter() - t0) / len(group)
        for i, arch in enumerate(group):
            r = _score_alone(arch, x, y, num_classes, alone, config)
            r["scores"].update({p: float(shared[p][i]) for p in together})
            r["seconds"].update({p: share for p in together})
            r["seconds_total"] += share
            r["scores"] = {p: r["scores"][p] for p in names}
            r["seconds"] = {p: r["seconds"][p] for p in names}
            r["nonfinite"] = [p for p in names if not math.isfinite(r["scores"][p])]
            for p in r["nonfinite"]:
                r["scores"][p] = -math.inf
            out.append(r)
            if progress is not None:
                progress(len(out), len(cells), r)
    return out


def _score_alone(arch: NB201Arch, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                 names: Sequence[str], config: ZeroCostConfig) -> dict[str, Any]:
    """The proxies of ``names`` that need the cell's own network, one network at a time."""
    start = time.perf_counter()
    with single_threaded():

        def fresh() -> NB201Network:
            """The cell's network at initialisation, the same weights each time (building it
            again is 3x cheaper than a deep copy, and no proxy sees another's changes)."""
            # the CPU generator alone: torch.manual_seed also queues seeds for every
            # accelerator backend, a third of a millisecond per cell for nothing here; a new
            # module is in training mode already
            torch.random.default_generator.manual_seed(config.seed)
            return NB201Network(arch, C=config.C, N=config.N, in_channels=int(x.shape[1]),
                                num_classes=num_classes)

        # One network for the proxies that leave its weights as they are (the shared pass,
        # jacov, zico, params, flops: gradients only, and BatchNorm's running statistics,
        # which training mode ignores), run in that order; the shared pass reads the
        # weights' gradients, so it runs first, on a network that has none.
        unchanged = functools.cache(fresh)

        scores: dict[str, float] = {}
        seconds: dict[str, float] = {}

        def run(group: Sequence[str], fn: Callable[[], dict[str, float]]) -> None:
            wanted = [p for p in group if p in names]
            if not wanted:
                return
            t0 = time.perf_counter()
            values = fn()
            dt = time.perf_counter() - t0
            for p in wanted:
                scores[p] = values[p]
                seconds[p] = dt

        run(_SHARED, lambda: _shared_pass(unchanged(), x, y, names))
        run(("synflow",), lambda: {"synflow": _synflow(fresh(), x.shape[1:])})
        run(("jacov",), lambda: {"jacov": _jacov(unchanged(), x)})
        run(("grasp",), lambda: {"grasp": _grasp(fresh(), x, y)})
        run(("zico",), lambda: {"zico": _zico(unchanged(), x, y, config.zico_batches)})
        run(("params", "flops"), lambda: _size(unchanged(), x, "flops" in names))
    return {"arch": arch.to_string(), "scores": scores, "seconds": seconds,
            "seconds_total": time.perf_counter() - start}


# ----- checks ------------------------------------------------------------------------------


def _check_batch(x: torch.Tensor, y: torch.Tensor, names: Sequence[str]) -> None:
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise ConfigError(f"expected images (B, C, H, W) and labels (B,), got {tuple(x.shape)} "
                          f"and {tuple(y.shape)}")
    if min(x.shape[-2:]) < MIN_RESOLUTION:
        raise ConfigError(f"zero-cost proxies need images of at least {MIN_RESOLUTION}x"
                          f"{MIN_RESOLUTION} px (the NB201 network halves them twice), got "
                          f"{x.shape[-2]}x{x.shape[-1]}")
    for side in x.shape[-2:]:
        check_side(int(side), "zero-cost image side")
    if len(x) < 2:
        raise ConfigError(f"zero-cost proxies need a batch of at least 2 images, got {len(x)}")
    data = [p for p in names if p not in DATA_FREE]
    if data and not bool(torch.isfinite(x).all()):
        raise DatasetError("the batch has non-finite pixel values")
    if data and bool((x == x[:1]).all()):
        raise DatasetError(
            f"the {len(x)} images of the zero-cost batch are identical (constant images?): "
            f"{', '.join(data)} cannot tell cells apart on them; only "
            f"{', '.join(sorted(DATA_FREE))} score without data")
    labelled = [p for p in names if p not in LABEL_FREE]
    if labelled and len(torch.unique(y)) < 2:
        raise DatasetError(
            f"the zero-cost batch has a single class: the loss-based proxies "
            f"{', '.join(labelled)} need at least 2 classes in the batch (use a larger batch, "
            f"or the label-free proxies {', '.join(p for p in PROXIES if p in LABEL_FREE)})")


# ----- proxies -------------------------------------------------------------------------------


def _weighted_layers(net: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _shared_pass(net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 names: Sequence[str]) -> dict[str, float]:
    """snip and grad_norm (weight gradients), fisher (layer output activations and their
    gradients), and nwot and meco (ReLU inputs, every module's output, through the
    :class:`~metanas.features.batched_proxies.Recorder`) from one forward and one backward
    pass."""
    want_loss = any(p in names for p in _LOSS_PASS)
    rec = Recorder(1, len(x), "nwot" in names, "meco" in names)
    cell = torch.zeros(1, dtype=torch.long)
    hooks = []
    if "nwot" in names:
        hooks += [m.register_forward_pre_hook(lambda _m, inp: rec.relu_input(inp[0], cell))
                  for m in net.modules() if isinstance(m, nn.ReLU)]
    if "meco" in names:
        hooks += [m.register_forward_hook(
            lambda _m, _i, out: rec.output(out, cell)
            if isinstance(out, torch.Tensor) and out.ndim == 4 else None)
            for m in net.modules()]
    fisher_terms: list[torch.Tensor] = []

    def capture(mod: nn.Module, _inp, out: torch.Tensor) -> None:
        if not out.requires_grad:
            return
        act = out.detach()
        per_channel_weights = mod.weight[0].numel()

        def on_grad(grad: torch.Tensor) -> None:
            g = act * grad
            if g.ndim > 2:
                g = g.sum(dim=tuple(range(2, g.ndim)))
            fisher_terms.append(0.5 * g.pow(2).mean(0).sum().double() * per_channel_weights)

        out.register_hook(on_grad)

    if "fisher" in names:
        hooks += [m.register_forward_hook(capture) for m in _weighted_layers(net)]
    try:
        if want_loss:
            F.cross_entropy(net(x), y).backward()
        else:
            with torch.no_grad():
                net(x)
    finally:
        for h in hooks:
            h.remove()
    out: dict[str, float] = {}
    if "nwot" in names:
        out["nwot"] = float(rec.nwot_scores()[0])
    if "meco" in names:
        out["meco"] = float(rec.meco_scores(1)[0])
    if not want_loss:
        return out
    snip = grad_norm = 0.0
    for layer in _weighted_layers(net):
        g = layer.weight.grad
        if g is None:
            continue
        snip += float((layer.weight.detach() * g).abs().sum())
        grad_norm += float(g.norm())
    fisher = float(sum(fisher_terms)) if fisher_terms else 0.0
    return {**out, "snip": snip, "grad_norm": grad_norm, "fisher": fisher}


def _size(net: nn.Module, x: torch.Tensor, flops: bool) -> dict[str, float]:
    out = {"params": float(count_params(net))}
    if flops:
        out["flops"] = float(count_macs(net, int(x.shape[-1]), int(x.shape[1])))
    return out


def _without_batchnorm(net: nn.Module) -> nn.Module:
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, nn.Identity())
    return net


def _synflow(net: nn.Module, image_shape: Sequence[int]) -> float:
    net = _without_batchnorm(net).double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    out = net(torch.ones(1, *image_shape, dtype=torch.float64))
    out.sum().backward()
    total = 0.0
    for layer in _weighted_layers(net):
        if layer.weight.grad is not None:
            total += float((layer.weight.detach() * layer.weight.grad).abs().sum())
    return math.log(total) if total > 0 else -math.inf


def _jacov(net: nn.Module, x: torch.Tensor) -> float:
    x = x.clone().requires_grad_(True)
    out = net(x)
    if not out.requires_grad:
        return -math.inf  # the output does not depend on the input (no path through the cell)
    out.backward(torch.ones_like(out))
    if x.grad is None:
        return -math.inf
    jac = x.grad.reshape(len(x), -1).double().numpy()
    if not np.isfinite(jac).all() or (jac.std(axis=1) == 0).any():
        return -math.inf  # correlations undefined (e.g. no path from input to output)
    eig = np.linalg.eigvalsh(np.corrcoef(jac))
    return float(-np.sum(np.log(eig + JACOV_EPS) + 1.0 / (eig + JACOV_EPS)))


def _grasp(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    layers = _weighted_layers(net)
    weights = [m.weight for m in layers]
    first = torch.autograd.grad(F.cross_entropy(net(x), y), weights, allow_unused=True)
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), weights, create_graph=True,
                                allow_unused=True)
    pairs = [(g0, g) for g0, g in zip(first, grads, strict=True)
             if g0 is not None and g is not None and g.requires_grad]
    if not pairs:
        return 0.0
    z = sum((g0.detach() * g).sum() for g0, g in pairs)
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return float(sum(float((-w.detach() * h).sum()) for w, h in zip(weights, hg, strict=True)
                     if h is not None))


def _zico(net: nn.Module, x: torch.Tensor, y: torch.Tensor, parts: int) -> float:
    layers = _weighted_layers(net)
    per_layer: list[list[torch.Tensor]] = [[] for _ in layers]
    for xs, ys in zip(torch.tensor_split(x, parts), torch.tensor_split(y, parts), strict=True):
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(xs), ys).backward()
        for i, layer in enumerate(layers):
            g = layer.weight.grad
            per_layer[i].append(torch.zeros_like(layer.weight) if g is None else g.detach().clone())
    total = 0.0
    for grads in per_layer:
        stack = torch.stack(grads).double()
        std = stack.std(dim=0, correction=0)
        mean_abs = stack.abs().mean(dim=0)
        nz = std > 0
        ratio = float((mean_abs[nz] / std[nz]).sum())
        if ratio > 0:
            total += math.log(ratio)
    return total


def rank_vote(results: Sequence[dict[str, Any]], proxies: Sequence[str],
              prior_order: bool = False, weights: Sequence[float] | None = None) -> np.ndarray:
    """Mean normalised rank of each cell over ``proxies`` (1 = best on every one); with
    ``prior_order`` the cells' given order (e.g. a predictor's ranking) votes once too.
    ``weights``: one per ballot (the prior order first, then the proxies), default equal."""
    n = len(results)
    ballots = [np.arange(n, 0, -1) / n] if prior_order else []
    for p in proxies:
        values = np.array([r["scores"][p] for r in results])
        rank = np.empty(n)
        rank[np.argsort(-values, kind="stable")] = np.arange(n, 0, -1) / n
        ballots.append(rank)
    if not ballots:
        return np.zeros(n)
    if weights is None:  # summed in ballot order: equal votes tie exactly
        return np.sum(ballots, axis=0) / len(ballots)
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(ballots),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(f"rank-vote weights must be {len(ballots)} finite numbers >= 0 with a "
                          f"positive sum, got {[float(v) for v in np.atleast_1d(w)]}")
    return np.asarray(ballots).T @ w / w.sum()
