"""Train many NB201 architectures at once on one task: B networks as one grouped model.

One proxy network (C=8, N=1, 16 px) is far too small to keep a GPU busy, so
:func:`train_architectures_batched` trains B architectures side by side as a single
:class:`BatchedNB201Network`, with the same numbers :func:`~metanas.training.trainer.train_architecture`
gives for each of them on its own (up to float rounding).

Design: grouped convolutions, not ``torch.func.vmap``
-----------------------------------------------------
* Channels are stacked: a tensor of the batched model has ``B * c`` channels, model ``b`` owning
  channels ``b*c .. (b+1)*c - 1`` everywhere.
* The stem is one ``Conv2d(in, B*C)`` on the shared input (its weight is the B stems concatenated
  along the output channels); every other convolution is a grouped ``Conv2d(B*c_in, B*c_out,
  groups=B)``, whose group ``b`` is exactly model ``b``'s convolution. ``BatchNorm2d(B*c)`` keeps
  per-channel statistics, so each model has its own batch statistics and running statistics. The
  classifier is a batched matmul (``baddbmm``) with a ``(B, classes, c)`` weight, giving logits of
  shape ``(B, n, classes)``.
* A cell edge computes every op that at least one of the B models uses on that edge and combines
  them with a 0/1 mask per (edge, op) broadcast over each model's channel group (``none`` = not
  computed, ``skip_connect`` = identity, ``avg_pool_3x3`` parameter-free, ``nor_conv_kxk`` a
  grouped ReLU-Conv-BN). Adding the zeros of the other ops is exact in floating point, so a
  model's node values are those of its own network.
* An op is *effective* for a model when its op is not ``none`` and its source node is alive in
  that model (:class:`~metanas.spaces.nb201.network.NB201Cell` skips edges out of dead nodes: it
  never runs them, so their BatchNorm shift would otherwise leak into the output). Slots of ops a
  model does not effectively use are initialised to zero (conv weights and BN affine parameters),
  so their output is zero, their gradient is zero, and SGD with weight decay and momentum keeps
  them exactly zero: nothing leaks between models.

``torch.func.functional_call`` + ``vmap`` was the alternative; it handles BatchNorm's running
statistics (in-place buffer updates) awkwardly and would still run B different cell graphs, so
the grouped model (one static graph for any mix of cells) was preferred.

Equivalence with the one-at-a-time trainer, per model
-----------------------------------------------------
* Initial weights: for each architecture ``torch.manual_seed(seed)`` then the single network is
  built exactly as the trainer builds it (``build_model``) and its parameters and buffers are
  copied into slot ``b``.
* Data: one ``torch.Generator(seed)`` stream consumed exactly as the trainer consumes it (per
  epoch a ``randperm``, then per batch the crop offsets and flips of ``augment_batch``); all B
  models see the same batches, as B separate runs with the same seed do. A final batch of fewer
  than 2 samples is skipped, like the trainer does.
* Loss: the per-model cross-entropy (with the recipe's label smoothing) of its own logits; the
  optimised loss is their **sum**, so each model's gradient is its separate run's gradient.
  SGD (momentum, nesterov, weight decay) is elementwise and the per-step cosine schedule is
  shared, so each slot follows its separate run's trajectory.
* Evaluation in eval mode (running BN statistics), per model accuracy and mean loss.

Results differ from the trainer's only by float rounding (grouped vs plain convolution kernels,
batched matmul vs ``addmm``), which SGD amplifies slowly: after a couple of epochs accuracies
agree to a sample and losses to well under 1e-3 relative (see ``tests/training/test_batched.py``).

``TrainResult.seconds`` is the batch's wall time (model building to the last evaluation, as the
trainer times it) divided by B: the amortised cost of one evaluation. Params and MACs are those of
each single network (``count_params`` / ``count_macs``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from metanas.errors import ConfigError
from metanas.progress import Bars
from metanas.spaces.nb201 import EDGES, NB201Arch, NB201Network, count_macs, count_params, parse
from metanas.spaces.nb201.genotype import NUM_NODES
from metanas.spaces.nb201.network import (
    AvgPool,
    NB201Cell,
    ReLUConvBN,
    ResidualReduction,
    nb201_stages,
)
from metanas.tasks import Task
from metanas.training.recipes import Recipe, get_recipe
from metanas.training.trainer import (
    TrainResult,
    _device_name,
    arch_label,
    build_model,
    input_side,
    make_optimizer,
    resolve_device,
    split_tensors,
    train_epoch,
)

__all__ = ["CELL_OPS", "CONV_KERNELS", "BatchedNB201Network", "effective_ops",
           "train_architectures_batched"]

CONV_KERNELS = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
"""Kernel size of each convolution op."""
CELL_OPS = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The ops that compute something (``none`` adds nothing)."""


def effective_ops(arch: NB201Arch | str) -> tuple[str, ...]:
    """The op each edge really runs in :class:`NB201Cell`: ``none`` where the op is ``none`` or
    the edge's source node receives nothing (the cell skips such edges)."""
    arch = parse(arch)
    live = [True] + [False] * (NUM_NODES - 1)
    out = []
    for (to, src), op in zip(EDGES, arch.ops, strict=True):
        eff = op if op != "none" and live[src] else "none"
        live[to] = live[to] or eff != "none"
        out.append(eff)
    return tuple(out)


# ----- building blocks ----------------------------------------------------------------------------


def _zero_(module: nn.Module) -> None:
    """Zero every parameter (unused slots must output zero and stay zero under weight decay)."""
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()


def _copy_conv(dst: nn.Conv2d, src: nn.Conv2d, b: int, *, back: bool = False) -> None:
    n = src.out_channels
    a, z = dst.weight[b * n : (b + 1) * n], src.weight
    with torch.no_grad():
        (z.copy_(a) if back else a.copy_(z))


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, b: int, *, back: bool = False) -> None:
    n = src.num_features
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            a, z = getattr(dst, name)[b * n : (b + 1) * n], getattr(src, name)
            (z.copy_(a) if back else a.copy_(z))
        if back:
            src.num_batches_tracked.copy_(dst.num_batches_tracked)


class _GroupedReLUConvBN(nn.Module):
    """B ``ReLUConvBN`` side by side: ReLU -> grouped Conv -> BatchNorm over B*c_out channels."""

    def __init__(self, B: int, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(B * c_in, B * c_out, kernel, stride=stride, padding=kernel // 2,
                              bias=False, groups=B)
        self.bn = nn.BatchNorm2d(B * c_out)
        _zero_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))

    def copy_slot(self, b: int, single: ReLUConvBN, *, back: bool = False) -> None:
        _copy_conv(self.conv, single[1], b, back=back)
        _copy_bn(self.bn, single[2], b, back=back)


class _BatchedReduction(nn.Module):
    def __init__(self, B: int, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = _GroupedReLUConvBN(B, c_in, c_out, 3, stride=2)
        self.conv_b = _GroupedReLUConvBN(B, c_out, c_out, 3)
        self.pool = AvgPool(2, stride=2)
        self.shortcut = nn.Conv2d(B * c_in, B * c_out, 1, bias=False, groups=B)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(self.pool(x)) + self.conv_b(self.conv_a(x))

    def copy_slot(self, b: int, single: ResidualReduction, *, back: bool = False) -> None:
        self.conv_a.copy_slot(b, single.conv_a, back=back)
        self.conv_b.copy_slot(b, single.conv_b, back=back)
        _copy_conv(self.shortcut, single.shortcut[1], b, back=back)


class _BatchedCell(nn.Module):
    """The union of B cells: each edge runs the ops any model uses there, masked per model."""

    def __init__(self, eff_ops: Sequence[Sequence[str]], channels: int) -> None:
        super().__init__()
        B = len(eff_ops)
        self.channels = channels
        self.edge_ops: list[list[str]] = []
        self.convs = nn.ModuleDict()
        self._masks: dict[str, str | None] = {}
        for k in range(len(EDGES)):
            used = [op for op in CELL_OPS if any(ops[k] == op for ops in eff_ops)]
            self.edge_ops.append(used)
            for op in used:
                key = f"{k}_{op}"
                if op in CONV_KERNELS:
                    self.convs[key] = _GroupedReLUConvBN(B, channels, channels, CONV_KERNELS[op])
                flags = torch.tensor([float(ops[k] == op) for ops in eff_ops])
                if bool(flags.all()):
                    self._masks[key] = None  # every model uses it: no masking needed
                else:
                    name = f"mask_{key}"
                    mask = flags.repeat_interleave(channels).view(1, B * channels, 1, 1)
                    self.register_buffer(name, mask, persistent=False)
                    self._masks[key] = name
        self._inputs = [[k for k, (to_k, _) in enumerate(EDGES) if to_k == to]
                        for to in range(NUM_NODES)]
        self._pool = AvgPool(3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x]
        for to in range(1, NUM_NODES):
            total = None
            for k in self._inputs[to]:
                src = nodes[EDGES[k][1]]
                if src is None:
                    continue
                for op in self.edge_ops[k]:
                    key = f"{k}_{op}"
                    if op == "skip_connect":
                        out = src
                    elif op == "avg_pool_3x3":
                        out = self._pool(src)
                    else:
                        out = self.convs[key](src)
                    mask_name = self._masks[key]
                    if mask_name is not None:
                        out = out * getattr(self, mask_name)
                    total = out if total is None else total + out
            nodes.append(total)
        return nodes[-1] if nodes[-1] is not None else torch.zeros_like(x)

    def copy_slot(self, b: int, single: NB201Cell, eff: Sequence[str], *,
                  back: bool = False) -> None:
        for k, ((to, src), op) in enumerate(zip(EDGES, eff, strict=True)):
            if op in CONV_KERNELS:
                self.convs[f"{k}_{op}"].copy_slot(b, single.edges[f"{to}<-{src}"], back=back)


class BatchedNB201Network(nn.Module):
    """B NB201 networks (same skeleton, any cells) computed as one model of B*C channels.

    ``forward`` takes a shared batch ``(n, in, R, R)`` and returns logits ``(B, n, classes)``.
    Slot ``b`` is loaded from / exported to a single :class:`NB201Network` with
    :meth:`load_slot` / :meth:`export`.
    """

    def __init__(self, archs: Sequence[NB201Arch | str], *, C: int = 16, N: int = 5,
                 in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        if not archs:
            raise ConfigError("a batched network needs at least one architecture")
        self.archs = tuple(parse(a) for a in archs)
        self.config = {"C": C, "N": N, "in_channels": in_channels, "num_classes": num_classes}
        self.eff_ops = tuple(effective_ops(a) for a in self.archs)
        B = self.B = len(self.archs)
        self.stem_conv = nn.Conv2d(in_channels, B * C, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(B * C)
        layers, c = nb201_stages(C, N, lambda c: _BatchedCell(self.eff_ops, c),
                                 lambda c, c2: _BatchedReduction(B, c, c2))
        self.cells = nn.ModuleList(layers)
        self.head_bn = nn.BatchNorm2d(B * c)
        self.c_out = c
        self.cls_weight = nn.Parameter(torch.zeros(B, num_classes, c))
        self.cls_bias = nn.Parameter(torch.zeros(B, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem_bn(self.stem_conv(x))
        for layer in self.cells:
            h = layer(h)
        h = F.adaptive_avg_pool2d(F.relu(self.head_bn(h)), 1).flatten(1)  # (n, B*c)
        feats = h.view(h.shape[0], self.B, self.c_out).transpose(0, 1)  # (B, n, c)
        return torch.baddbmm(self.cls_bias[:, None, :], feats, self.cls_weight.transpose(1, 2))

    def _copy(self, b: int, net: NB201Network, *, back: bool) -> None:
        if net.arch != self.archs[b] or net.config != self.config:
            raise ConfigError(f"slot {b} holds {self.archs[b]} with {self.config}; got "
                              f"{net.arch} with {net.config}")
        _copy_conv(self.stem_conv, net.stem[0], b, back=back)
        _copy_bn(self.stem_bn, net.stem[1], b, back=back)
        for mine, theirs in zip(self.cells, net.cells, strict=True):
            if isinstance(mine, _BatchedCell):
                mine.copy_slot(b, theirs, self.eff_ops[b], back=back)
            else:
                mine.copy_slot(b, theirs, back=back)
        _copy_bn(self.head_bn, net.head[0], b, back=back)
        with torch.no_grad():
            if back:
                net.classifier.weight.copy_(self.cls_weight[b])
                net.classifier.bias.copy_(self.cls_bias[b])
            else:
                self.cls_weight[b].copy_(net.classifier.weight)
                self.cls_bias[b].copy_(net.classifier.bias)

    def load_slot(self, b: int, net: NB201Network) -> None:
        """Copy ``net``'s parameters and BN buffers into slot ``b`` (ops on dead edges stay 0)."""
        self._copy(b, net, back=False)

    def export(self, b: int, net: NB201Network | None = None) -> NB201Network:
        """Slot ``b`` as a single network (on the CPU, in eval mode).

        Parameters of ops the cell never runs (edges out of dead nodes) are not in the batched
        model; they keep ``net``'s values (pass the network built with the run's seed to get
        exactly the trainer's returned model), or a fresh random init when ``net`` is None.
        """
        if net is None:
            net = NB201Network(self.archs[b], **self.config)
        dev = next(self.parameters()).device
        net.to(dev)
        self._copy(b, net, back=True)
        return net.cpu().eval()


# ----- training -------------------------------------------------------------------------------------


def train_architectures_batched(
    archs: Sequence[NB201Arch | str],
    task: Task,
    recipe: str | Recipe = "cpu-proxy",
    *,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    progress: bool = False,
    return_model: bool = False,
) -> list[TrainResult] | tuple[list[TrainResult], BatchedNB201Network]:
    """Train every arch in ``archs`` on ``task`` at once; one :class:`TrainResult` per arch, in
    order, each equal (up to float rounding) to ``train_architecture(arch, task, recipe,
    seed=seed)``. ``seconds`` is the whole batch's wall time divided by ``len(archs)``.
    With ``return_model`` also returns the trained :class:`BatchedNB201Network` (on the CPU).
    """
    archs = [parse(a) for a in archs]
    if not archs:
        raise ConfigError("train_architectures_batched needs at least one architecture")
    recipe = get_recipe(recipe)
    dev = resolve_device(device)
    res = input_side(task, recipe)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = split_tensors(task, res, dev)
    B = len(archs)

    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model: BatchedNB201Network | None = None
    sizes = []
    for b, arch in enumerate(archs):
        torch.manual_seed(seed)  # the trainer seeds right before building its model
        single = build_model(arch, task, recipe)
        if model is None:
            model = BatchedNB201Network(archs, **single.config)
        model.load_slot(b, single)
        sizes.append((count_params(single), count_macs(single, res, task.channels)))
    assert model is not None
    model.to(dev)
    n = len(y_tr)
    opt, sched, total_steps = make_optimizer(model, recipe, n)

    train_loss = torch.full((B,), float("nan"))
    with Bars(progress, transient=True) as bars:
        label = arch_label(archs[0]) + (f" +{B - 1}" if B > 1 else "")
        bar = bars.add(f"train {label} ({recipe.name}, batched x{B})", total_steps)
        for epoch in range(recipe.epochs):

            def shown(losses: torch.Tensor, epoch: int = epoch) -> None:
                bars.advance(bar, status=f"epoch {epoch + 1}/{recipe.epochs}, "
                                         f"mean loss {losses.mean().item():.3f}")

            loss_sum, seen = train_epoch(model, opt, sched, x_tr, y_tr, recipe, gen,
                                         loss_fn=_per_model_loss,
                                         on_step=shown if progress else None,
                                         max_steps=total_steps - sched.last_epoch)
            train_loss = (loss_sum / max(seen, 1)).cpu()
    val_acc, val_loss = _evaluate(model, x_va, y_va, recipe.eval_batch_size)
    test_acc, test_loss = _evaluate(model, x_te, y_te, recipe.eval_batch_size)
    seconds = (time.perf_counter() - start) / B
    dev_name = _device_name(dev)
    results = [
        TrainResult(
            arch=arch.to_string(),
            recipe=recipe.name,
            recipe_hash=recipe.hash,
            seed=seed,
            val_acc=val_acc[b],
            test_acc=test_acc[b],
            train_loss=float(train_loss[b]),
            val_loss=val_loss[b],
            test_loss=test_loss[b],
            seconds=seconds,
            params=sizes[b][0],
            macs=sizes[b][1],
            device=dev_name,
            epochs=recipe.epochs,
        )
        for b, arch in enumerate(archs)
    ]
    if return_model:
        return results, model.cpu().eval()
    return results


def _per_model_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Mean cross-entropy of each model's logits ``(B, n, K)``: shape ``(B,)``."""
    B, n, K = logits.shape
    losses = F.cross_entropy(logits.reshape(B * n, K), y.repeat(B), reduction="none",
                             label_smoothing=label_smoothing)
    return losses.view(B, n).mean(1)


@torch.no_grad()
def _evaluate(model: BatchedNB201Network, x: torch.Tensor, y: torch.Tensor,
              batch: int) -> tuple[list[float], list[float]]:
    """Per model (accuracy, mean cross-entropy) in eval mode, like ``trainer.evaluate``."""
    B = model.B
    if len(y) == 0:
        return [float("nan")] * B, [float("nan")] * B
    model.eval()
    correct = torch.zeros(B, dtype=torch.long, device=y.device)
    loss = torch.zeros(B, dtype=torch.float64, device=y.device)
    for i in range(0, len(y), batch):
        logits = model(x[i : i + batch])  # (B, m, K)
        yb = y[i : i + batch]
        m, K = logits.shape[1], logits.shape[2]
        ce = F.cross_entropy(logits.reshape(B * m, K), yb.repeat(B), reduction="none")
        loss += ce.view(B, m).sum(1).double()
        correct += (logits.argmax(-1) == yb).sum(1)
    return [c / len(y) for c in correct.tolist()], [v / len(y) for v in loss.tolist()]
