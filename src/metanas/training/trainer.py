"""Train one NB201 architecture on one task with a named recipe.

Seeded: the same (architecture, task, recipe, seed) on the same device and thread count gives the
same numbers. Returns validation and test accuracy (fractions), losses, wall seconds, params, MACs
and the device.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from metanas.errors import ConfigError
from metanas.progress import Bars
from metanas.spaces.nb201 import NB201Arch, NB201Network, count_macs, count_params, parse
from metanas.spaces.nb201.network import check_side
from metanas.tasks import Task
from metanas.training.recipes import Recipe, get_recipe


class DeadlineReached(Exception):  # noqa: N818 - a signal to the caller, not an error
    """Training was stopped at its ``deadline``: the caller's time budget is spent."""


@dataclass
class TrainResult:
    arch: str
    recipe: str
    recipe_hash: str
    seed: int
    val_acc: float
    test_acc: float
    train_loss: float
    val_loss: float
    test_loss: float
    seconds: float
    params: int
    macs: int
    device: str
    epochs: int
    curve: list[dict] = field(default_factory=list)
    """Per completed epoch: epoch, train_loss, lr (at its start), val_acc (``keep_best``
    only, else None) and seconds since the start."""
    best_epoch: int | None = None
    """With ``keep_best``: the epoch whose weights the model ends with (0: the initial
    weights of ``init_model``, never improved on)."""
    init_val_acc: float | None = None
    """With ``init_model`` and ``keep_best``: validation accuracy before the first step."""

    def to_dict(self) -> dict:
        return asdict(self)

    def metrics(self) -> dict:
        """The fields a knowledge base stores as metrics."""
        keys = ("val_acc", "test_acc", "train_loss", "val_loss", "params", "macs")
        return {k: getattr(self, k) for k in keys}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` picks CUDA when available; a CUDA request without CUDA is a clear error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' requested but CUDA is not available")
    return dev


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True)


def input_side(task: Task, recipe: Recipe) -> int:
    """The side a recipe trains ``task`` at (its own, or the task's), checked for the NB201
    skeleton (a clear error instead of a shape mismatch in the first step)."""
    res = recipe.resolution or task.resolution
    check_side(res, f"recipe {recipe.name}: resolution" if recipe.resolution else
               "task resolution")
    return res


def split_tensors(task: Task, resolution: int, dev: torch.device):
    """(x, y) of the train, validation and test splits at ``resolution`` on ``dev``."""
    return [
        (resize(x, resolution).to(dev), y.to(dev))
        for x, y in ((task.x_train, task.y_train), (task.x_val, task.y_val),
                     (task.x_test, task.y_test))
    ]


def augment_batch(x: torch.Tensor, mode: str, gen: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding of R/8 (per image), and horizontal flips."""
    if mode == "none":
        return x
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)
    cols = (dx[:, None] + torch.arange(w)[None, :]).to(x.device)
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if mode == "crop-flip":
        flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out.contiguous()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) in eval mode."""
    if len(y) == 0:
        return float("nan"), float("nan")
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(y), batch):
        logits = model(x[i : i + batch])
        loss += F.cross_entropy(logits, y[i : i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == y[i : i + batch]).sum().item()
    return correct / len(y), loss / len(y)


class WarmupCosine:
    """Learning-rate factor per step: linear from ``1 / warm`` to 1 over ``warm`` steps,
    then a cosine to 0 at ``total``. ``horizons`` (a recipe's ``lr_horizons``): the first
    horizon's total, then each later move: from its step on, a cosine from the factor reached
    there to 0 at its total (a budgeted fit that replanned while training; no jump)."""

    def __init__(self, warm: int, total: int,
                 horizons: tuple[tuple[int, int], ...] = ()) -> None:
        self.warm = warm
        self.segments = [(warm, 1.0, horizons[0][1] if horizons else total)]
        for step, end in horizons[1:]:
            self.segments.append((step, self(step), end))
        if self.total != total:
            raise ConfigError(f"lr horizons end at step {self.total}, the recipe at {total}")

    @property
    def total(self) -> int:
        return self.segments[-1][2]

    def __call__(self, step: int) -> float:
        if step < self.warm:
            return (step + 1) / self.warm
        start, factor, end = next(s for s in reversed(self.segments) if s[0] <= step)
        t = (step - start) / max(1, end - start)
        return factor * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def lr_shape(recipe: Recipe, n_train: int) -> WarmupCosine:
    """The per-step factor of a recipe with a warm-up (its replanned horizons included)."""
    steps_per_epoch = max(1, math.ceil(n_train / recipe.batch_size))
    return WarmupCosine(recipe.warmup_epochs * steps_per_epoch, recipe_steps(recipe, n_train),
                        recipe.lr_horizons)


def recipe_steps(recipe: Recipe, n_train: int) -> int:
    """SGD steps of a recipe on ``n_train`` images: its epochs' batches, or ``max_steps``."""
    return steps_per_epochs(recipe, max(1, math.ceil(n_train / recipe.batch_size)))


def steps_per_epochs(recipe: Recipe, steps_per_epoch: int) -> int:
    """:func:`recipe_steps` when the steps per epoch are known."""
    steps = recipe.epochs * steps_per_epoch
    return steps if recipe.max_steps is None else min(steps, recipe.max_steps)


def make_optimizer(model: nn.Module, recipe: Recipe, n_train: int):
    """The recipe's SGD (nesterov, weight decay) and per-step cosine schedule (after
    ``warmup_epochs`` of linear warm-up): (opt, sched, total steps). Shared by the single
    and the batched trainer so they stay equivalent."""
    opt = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )
    total_steps = recipe_steps(recipe, n_train)
    if recipe.warmup_epochs:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_shape(recipe, n_train))
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return opt, sched, total_steps


def build_model(arch: NB201Arch | str, task: Task, recipe: Recipe,
                init_model: NB201Network | None = None) -> NB201Network:
    """A fresh network of the recipe's size, or a copy of ``init_model`` (checked against
    the architecture, the task and the recipe's size)."""
    if init_model is None:
        return NB201Network(arch, C=recipe.C, N=recipe.N, in_channels=task.channels,
                            num_classes=task.num_classes)
    check_init_model(init_model, arch, task, recipe)
    return copy.deepcopy(init_model)


def check_init_model(model: nn.Module, arch: NB201Arch | str, task: Task,
                     recipe: Recipe | None = None) -> None:
    """An initial network must be an NB201Network of ``arch`` for the task's channels and
    classes (and of the recipe's C and N); else a one-line error."""
    if not isinstance(model, NB201Network):
        raise ConfigError(f"init_model must be an NB201Network, got {type(model).__name__}")
    cfg, arch = model.config, parse(arch)
    if model.arch != arch:
        raise ConfigError(f"init_model is a network of {model.arch.to_string()}, not of "
                          f"{arch.to_string()}")
    if (cfg["in_channels"], cfg["num_classes"]) != (task.channels, task.num_classes):
        raise ConfigError(f"init_model takes {cfg['in_channels']} channels and has "
                          f"{cfg['num_classes']} classes; the task has {task.channels} and "
                          f"{task.num_classes}")
    if recipe is not None and (cfg["C"], cfg["N"]) != (recipe.C, recipe.N):
        raise ConfigError(f"init_model has C={cfg['C']}, N={cfg['N']}; recipe {recipe.name} "
                          f"has C={recipe.C}, N={recipe.N}")


LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
"""``(logits, labels, label_smoothing) -> loss``: a scalar, or one loss per model of a
batched network (their sum is minimised, so each model gets its own gradient)."""


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    return F.cross_entropy(logits, y, label_smoothing=label_smoothing)


def train_step(model: nn.Module, opt, sched, xb: torch.Tensor, yb: torch.Tensor,
               recipe: Recipe, loss_fn: LossFn = cross_entropy) -> torch.Tensor:
    """One SGD step on an (augmented) batch; the loss(es). The training loop and the budget
    probe (:mod:`metanas.training.budget`) share it, so the probe times exactly what training
    runs."""
    losses = loss_fn(model(xb), yb, recipe.label_smoothing)
    opt.zero_grad(set_to_none=True)
    losses.sum().backward()
    opt.step()
    sched.step()
    return losses


def train_epoch(model: nn.Module, opt, sched, x: torch.Tensor, y: torch.Tensor,
                recipe: Recipe, gen: torch.Generator, *, loss_fn: LossFn = cross_entropy,
                deadline: float | None = None, what: str = "training",
                on_step: Callable[[torch.Tensor], None] | None = None,
                max_steps: int | None = None) -> tuple[torch.Tensor, int]:
    """One epoch, the loop both trainers run: a seeded order (one ``randperm`` of ``gen``),
    batches of the recipe's size (a last batch under 2 is skipped: BatchNorm needs 2),
    the recipe's augmentation from ``gen``, one :func:`train_step` each. Returns the sum of
    per-sample losses (float64; per model for a batched network) and the samples seen.
    ``deadline``: :class:`DeadlineReached` (naming ``what``) at the first step after it.
    ``max_steps``: the epoch ends after that many steps (a recipe's partial last epoch)."""
    model.train()
    order = torch.randperm(len(y), generator=gen).to(x.device)
    loss_sum: torch.Tensor | float = 0.0
    seen = steps = 0
    for i in range(0, len(y), recipe.batch_size):
        idx = order[i : i + recipe.batch_size]
        if len(idx) < 2:
            continue
        if max_steps is not None and steps >= max_steps:
            break
        if deadline is not None and time.perf_counter() >= deadline:
            raise DeadlineReached(f"{what} stopped at its deadline")
        xb = augment_batch(x[idx], recipe.augment, gen)
        losses = train_step(model, opt, sched, xb, y[idx], recipe, loss_fn)
        loss_sum = loss_sum + losses.detach().double() * len(idx)
        seen += len(idx)
        steps += 1
        if on_step is not None:
            on_step(losses)
    return torch.as_tensor(loss_sum, dtype=torch.float64), seen


def train_architecture(
    arch: NB201Arch | str,
    task: Task,
    recipe: str | Recipe = "cpu-proxy",
    *,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    progress: bool = False,
    return_model: bool = False,
    deadline: float | None = None,
    keep_best: bool = False,
    stop_at_deadline: bool = False,
    init_model: NB201Network | None = None,
    replan: Callable[[Recipe, float, float, int, int], Recipe] | None = None,
) -> TrainResult | tuple[TrainResult, NB201Network]:
    """Train ``arch`` on ``task.x_train``; report accuracy on ``x_val`` and ``x_test``.

    ``deadline`` (a ``time.perf_counter()`` value): raise :class:`DeadlineReached` at the
    first step after it, so a search's time budget holds to a step, not to a whole training;
    with ``stop_at_deadline`` training ends there instead and the result is what was reached.
    ``keep_best``: validate after every epoch and end with the weights of the best validation
    accuracy (the latest epoch on ties: its learning rate is lower); ``result.curve`` then
    has per-epoch validation too.
    ``init_model``: start from a copy of this network (its weights, BatchNorm statistics
    included; it must have the recipe's C and N) instead of a seeded random init; with
    ``keep_best`` its weights are validated first and count as epoch 0.
    ``replan(recipe, seconds_per_epoch, seconds_to_deadline, steps_per_epoch, steps_done)``:
    called once the recipe's ``warmup_epochs`` (at least 1) have run and been timed (their
    mean), then after every later epoch while epochs remain (the last epoch's seconds); a
    recipe it returns with other ``epochs``, ``max_steps`` or ``lr_horizons`` (nothing else)
    is trained from there, its cosine spanning the new steps.
    """
    arch = parse(arch)
    recipe = get_recipe(recipe)
    dev = resolve_device(device)
    res = input_side(task, recipe)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = split_tensors(task, res, dev)

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model = build_model(arch, task, recipe, init_model)
    params, macs = count_params(model), count_macs(model, res, task.channels)
    model.to(dev)
    n = len(y_tr)
    opt, sched, total_steps = make_optimizer(model, recipe, n)
    if replan is not None and not recipe.warmup_epochs:
        raise ConfigError(f"recipe {recipe.name}: replanning needs warmup_epochs >= 1")

    train_loss = float("nan")
    curve: list[dict] = []
    best: tuple[float, int, dict] | None = None  # (val acc, epoch, weights)
    init_val_acc = None
    if init_model is not None and keep_best:
        init_val_acc, _ = evaluate(model, x_va, y_va, recipe.eval_batch_size)
        best = (init_val_acc, 0, _copy_state(model))
    with Bars(progress, transient=True) as bars:
        bar = bars.add(f"train {arch_label(arch)} ({recipe.name})", total_steps)
        status = ""
        loop_start = time.perf_counter()
        epoch = 0
        try:
            while epoch < recipe.epochs and sched.last_epoch < total_steps:
                lr = opt.param_groups[0]["lr"]
                epoch_start = time.perf_counter()

                def shown(loss: torch.Tensor, epoch: int = epoch, status: str = status,
                          epochs: int = recipe.epochs) -> None:
                    bars.advance(bar, status=f"epoch {epoch + 1}/{epochs}, "
                                             f"loss {loss.item():.3f}{status}")

                loss_sum, seen = train_epoch(model, opt, sched, x_tr, y_tr, recipe, gen,
                                             deadline=deadline,
                                             what=f"training {arch.to_string()}",
                                             on_step=shown if progress else None,
                                             max_steps=total_steps - sched.last_epoch)
                train_loss = float(loss_sum) / max(seen, 1)
                point = {"epoch": epoch + 1, "train_loss": train_loss, "lr": lr,
                         "val_acc": None, "seconds": time.perf_counter() - start}
                if keep_best:
                    acc, _ = evaluate(model, x_va, y_va, recipe.eval_batch_size)
                    point.update(val_acc=acc, seconds=time.perf_counter() - start)
                    if best is None or acc >= best[0]:
                        best = (acc, epoch + 1, _copy_state(model))
                    status = f", val acc {acc:.3f} (best {best[0]:.3f} @ {best[1]})"
                curve.append(point)
                epoch += 1
                if replan is not None and recipe.warmup_epochs <= epoch < recipe.epochs:
                    now = time.perf_counter()
                    left = float("inf") if deadline is None else deadline - now
                    took = ((now - loop_start) / epoch if epoch == recipe.warmup_epochs
                            else now - epoch_start)
                    new = _replanned(recipe, replan(recipe, took, left,
                                                    math.ceil(n / recipe.batch_size),
                                                    sched.last_epoch))
                    if new != recipe:
                        recipe, total_steps = new, recipe_steps(new, n)
                        sched.lr_lambdas[0] = lr_shape(recipe, n)
                        bars.retotal(bar, total_steps)
        except DeadlineReached:
            if not stop_at_deadline:
                raise
    if best is not None:
        model.load_state_dict(best[2])
    val_acc, val_loss = evaluate(model, x_va, y_va, recipe.eval_batch_size)
    test_acc, test_loss = evaluate(model, x_te, y_te, recipe.eval_batch_size)
    result = TrainResult(
        arch=arch.to_string(),
        recipe=recipe.name,
        recipe_hash=recipe.hash,
        seed=seed,
        val_acc=val_acc,
        test_acc=test_acc,
        train_loss=train_loss,
        val_loss=val_loss,
        test_loss=test_loss,
        seconds=time.perf_counter() - start,
        params=params,
        macs=macs,
        device=_device_name(dev),
        epochs=recipe.epochs,
        curve=curve,
        best_epoch=best[1] if best is not None else None,
        init_val_acc=init_val_acc,
    )
    if return_model:
        return result, model.cpu().eval()
    return result


def _replanned(recipe: Recipe, new: Recipe) -> Recipe:
    """``new`` if it differs from ``recipe`` in the name and the epochs only (the warm-up
    already ran with everything else)."""
    keep = ("name", "epochs", "max_steps", "lr_horizons", "description")
    if any(getattr(new, f.name) != getattr(recipe, f.name)
           for f in dataclasses.fields(recipe) if f.name not in keep):
        raise ConfigError(f"a replan may change only the epochs (and steps) of {recipe.name}")
    return new


def _copy_state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


_SHORT_OPS = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "1x1",
              "nor_conv_3x3": "3x3", "avg_pool_3x3": "pool"}


def arch_label(arch: NB201Arch) -> str:
    """The cell, compactly, for progress output: the ops into node 1 | node 2 | node 3,
    e.g. ``3x3|3x3,pool|skip,3x3,skip`` for
    ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``."""
    ops = [_SHORT_OPS.get(op, op) for op in arch.ops]
    return "|".join(",".join(ops[start:start + node]) for start, node in ((0, 1), (1, 2), (3, 3)))


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return f"cpu:{torch.get_num_threads()}t"
