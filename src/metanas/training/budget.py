"""Size a final training to a wall-clock budget: a throughput probe picks C, N, epochs, batch.

A named recipe fixes the network and the epochs, so its wall time depends on the machine; a
user with 5 minutes and one with an hour want different networks. :func:`plan_training`
times a few real training steps (:func:`~metanas.training.trainer.train_step`, the loop's own
step) of candidate sizes on the current device and applies one rule:

* **Batch size:** the largest of 256, 128, 64, 32 that still gives at least
  :data:`MIN_STEPS_PER_EPOCH` steps per epoch (32 at the least); learning rate
  ``min(0.1, 0.05 * batch / 64)`` (linear scaling from the CPU proxy's 0.05 at 64, capped at
  NB201's 0.1).
* **Size:** the candidates of :data:`SIZES` go from small to large; each is probed while the
  previous one still left time for ``min_epochs`` (20) epochs. The pick is the largest
  candidate for which ``min_epochs`` epochs fit; when none does, the smallest one.
* **Epochs:** as many as fit in the time left after the probe, less a reserve for the final
  evaluation (and at most ``max_epochs``, 200 as NB201). Fewer than one epoch is an error
  naming the budget it would need.
* **Replan:** a plan of 3 or more epochs starts with one epoch of linear learning-rate
  warm-up; once it has run, its measured time sets the epochs (:meth:`Plan.replan`) and the
  cosine spans them. A few probe steps misjudge an epoch by 10-30% on a shared CPU (a
  300 s CIFAR-10 fit used 220 s before this); a whole epoch does not.

Timings are medians of a few steps on a machine that may be shared, so the plan is an
estimate; the trainer's deadline is what holds the budget (see :mod:`metanas.training.fit`).
Every other choice is seeded: the probe's weights and batches come from ``seed``.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from metanas.errors import ConfigError
from metanas.progress import Bars
from metanas.spaces.nb201 import NB201Arch, NB201Network, parse
from metanas.tasks import Task
from metanas.training.recipes import Recipe
from metanas.training.trainer import (
    augment_batch,
    build_model,
    evaluate,
    make_optimizer,
    resolve_device,
    split_tensors,
    steps_per_epochs,
    train_step,
)

SIZES: tuple[tuple[int, int], ...] = (
    (8, 1), (12, 1), (16, 1), (16, 2), (24, 2), (32, 2), (32, 3), (48, 3), (64, 3), (64, 5),
)
"""Candidate (C, N), cheapest first (cost grows with C^2 * N)."""
MIN_EPOCHS = 20
MAX_EPOCHS = 200
MIN_STEPS_PER_EPOCH = 40
PROBE_STEPS = 3
"""Timed steps per candidate (after one warm-up step)."""
PROBE_SHARE = 0.15
"""At most this share of the budget goes to probing; larger candidates are then not tried."""
SAFETY = 0.9
"""Plan epochs for this share of the time left (timings on a shared machine vary)."""
REPLAN_SAFETY = 0.97
"""Replan for this share of the time left after the timed warm-up epoch (and later)."""
MOVE_SHARE = 0.05
"""After the first replan, the plan moves again only when the steps that now fit differ from
the planned ones by more than this share of the steps left (a change of load, not noise)."""
WARMUP_FROM = 3
"""Plans of at least this many epochs start with one warm-up epoch, timed to replan."""


STEP_COST_OPS: tuple[str, ...] = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The ops that cost time when executed (``none`` edges are not built)."""
STEP_COST: dict[int, dict[str, float]] = {
    32: {"skip_connect": 0.0, "nor_conv_1x1": 0.42, "nor_conv_3x3": 0.57, "avg_pool_3x3": 0.18},
    16: {"skip_connect": 0.06, "nor_conv_1x1": 0.38, "nor_conv_3x3": 0.44, "avg_pool_3x3": 0.23},
}
"""Seconds of a training step per executed edge, as a share of the skeleton's (stem,
reductions, head), per image side: least squares over timed steps of 40 random cells at C=8,
N=1, batch 128, one thread (``benchmarks/step_cost.py``, ``docs/results/step_cost.json``: R²
0.92 at 32 px, 0.87 at 16 px; skip edges cost nothing measurable at 32 px)."""
DEAD_EDGE_SHARE: dict[int, float] = {32: 0.65, 16: 0.3}
"""The share of an edge's cost that a dead edge (:func:`dead_edges`: forward only) costs,
fitted with :data:`STEP_COST`."""
EPOCH_CURVE: dict[str, float] = {"k_points": 69.16, "alpha": 0.148}
"""``accuracy(e) = a_cell - k * e^-alpha`` (percent points) after ``e`` epochs of a cosine
run at C=8, N=1: one ``k``, ``alpha`` for all cells, fitted by ``benchmarks/epoch_curve.py``
on a development task (Tiny-ImageNet, 10 classes, 32 px, 6 cells x 1-64 epochs, rmse 2.3
points; ``docs/results/epoch_curve/``). The curve had not flattened by 64 epochs: a doubling of
the epochs is worth 5.5 points at 4 epochs and 3.6 at 64; the per-cell asymptotes are not
identified, and only differences of the curve are used."""


def time_train_step(arch: NB201Arch | str, *, side: int, batch: int, C: int = 8, N: int = 1,
                    channels: int = 3, classes: int = 10, timed: int = 2, warmup: int = 1,
                    seed: int = 0) -> float:
    """Median seconds of a training step of ``arch`` (forward, backward, SGD; no augmentation)
    on a seeded random batch, after ``warmup`` untimed steps, with the current torch threads."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = NB201Network(arch, C=C, N=N, in_channels=channels, num_classes=classes)
    recipe = fit_recipe(C, N, 1, batch, "none")
    opt, sched, _ = make_optimizer(net, recipe, batch * (timed + warmup))
    x = torch.randn(batch, channels, side, side, generator=gen)
    y = torch.randint(0, classes, (batch,), generator=gen)
    net.train()
    times = []
    for _ in range(timed + warmup):
        t0 = time.perf_counter()
        train_step(net, opt, sched, x, y, recipe)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[warmup:])


def epoch_deficit(epochs: float) -> float:
    """Accuracy points a run of ``epochs`` epochs loses against a long one (the curve's
    ``k * e^-alpha``; below one epoch the curve at one epoch, more for less)."""
    e = max(float(epochs), 1e-3)
    return EPOCH_CURVE["k_points"] * e ** -EPOCH_CURVE["alpha"]


def executed_edges(arch: NB201Arch | str) -> dict[str, int]:
    """How many edges of each op a forward pass runs: those whose source node is reachable
    from the input through non-``none`` edges (``NB201Cell`` skips the rest)."""
    return _edge_roles(parse(arch))[0]


def dead_edges(arch: NB201Arch | str) -> dict[str, int]:
    """Of the executed edges, those whose output never reaches the cell's output: they run
    forward but get no backward pass (autograd leaves them out)."""
    return _edge_roles(parse(arch))[1]


def _edge_roles(arch: NB201Arch) -> tuple[dict[str, int], dict[str, int]]:
    counts, dead = dict.fromkeys(STEP_COST_OPS, 0), dict.fromkeys(STEP_COST_OPS, 0)
    for op, role in zip(arch.ops, arch.edge_roles, strict=True):
        if role != "off":
            counts[op] += 1
            dead[op] += role == "dead"
    return counts, dead


def relative_step_cost(arch: NB201Arch | str, resolution: int = 32) -> float:
    """A training step's seconds in units of the skeleton's (1.0 = a cell of ``none`` edges)
    at the measured image side closest to ``resolution``:
    deterministic, so a ranking for a budget does not move with the load of the machine."""
    side = min(STEP_COST, key=lambda known: abs(known - resolution))
    table, share = STEP_COST[side], DEAD_EDGE_SHARE[side]
    counts, dead = _edge_roles(parse(arch))
    return 1.0 + sum(table[op] * (counts[op] - (1.0 - share) * dead[op]) for op in counts)


@dataclass
class Plan:
    """The chosen recipe and how it was chosen (JSON-able via :meth:`to_dict`)."""

    recipe: Recipe
    epoch_seconds: float
    """Estimated seconds per epoch of the pick (training steps plus validation)."""
    eval_seconds: float
    """Estimated seconds of one pass over the test split (reserved at the end)."""
    probe_seconds: float
    probes: list[dict[str, Any]] = field(default_factory=list)
    rule: str = ""
    replanned: dict[str, Any] | None = None
    """After the warm-up epoch: the probe's epochs, the measured seconds per epoch, the new
    epochs (``recipe`` is then the replanned one)."""
    moves: list[dict[str, Any]] = field(default_factory=list)
    """Later replans (the load changed while training): the same fields, plus the step."""

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": recipe_summary(self.recipe), "epoch_seconds": self.epoch_seconds,
                "eval_seconds": self.eval_seconds, "probe_seconds": self.probe_seconds,
                "probes": self.probes, "rule": self.rule, "replanned": self.replanned,
                "moves": self.moves}

    def replan(self, recipe: Recipe, epoch_seconds: float, seconds_left: float,
               steps_per_epoch: int, steps_done: int | None = None,
               max_epochs: int = MAX_EPOCHS) -> Recipe:
        """:func:`replan_epochs`, recorded: ``self.recipe`` becomes the replanned recipe.
        After the first replan the plan moves only past :data:`MOVE_SHARE`."""
        new = replan_epochs(recipe, epoch_seconds, seconds_left, steps_per_epoch, steps_done,
                            max_epochs=max_epochs)
        record = {"epochs_planned": recipe.epochs, "epoch_seconds": epoch_seconds,
                  "seconds_left": seconds_left, "epochs": new.epochs, "max_steps": new.max_steps}
        if self.replanned is None:
            self.replanned = record
        else:
            planned, now = (steps_per_epochs(r, steps_per_epoch) for r in (recipe, new))
            if abs(now - planned) <= MOVE_SHARE * max(planned - (steps_done or 0), 1):
                return recipe
            self.moves.append({**record, "step": steps_done})
        self.recipe = new
        return new


def recipe_summary(recipe: Recipe) -> dict[str, Any]:
    """What a saved model records of its recipe: everything that changed the weights."""
    return {"name": recipe.name, "hash": recipe.hash, **recipe.config()}


def pick_batch_size(n_train: int) -> int:
    for batch in (256, 128, 64, 32):
        if n_train / batch >= MIN_STEPS_PER_EPOCH:
            return batch
    return 32


def fit_recipe(C: int, N: int, epochs: int, batch: int, augment: str,
               resolution: int | None = None, warmup: int = 0,
               max_steps: int | None = None,
               horizons: tuple[tuple[int, int], ...] = ()) -> Recipe:
    """The budgeted recipe for a size: SGD nesterov, cosine (after ``warmup`` epochs of
    linear warm-up; over ``max_steps`` when the last epoch is partial), wd 5e-4 as the named
    recipes."""
    tag = ((f"-w{warmup}" if warmup else "") + (f"-s{max_steps}" if max_steps else "")
           + (f"-m{len(horizons) - 1}" if horizons else ""))
    return Recipe(name=f"fit-C{C}-N{N}-e{epochs}-b{batch}-{augment}{tag}", C=C, N=N,
                  epochs=epochs, batch_size=batch, lr=min(0.1, 0.05 * batch / 64),
                  weight_decay=5e-4, resolution=resolution, augment=augment,
                  warmup_epochs=warmup, max_steps=max_steps, lr_horizons=horizons,
                  description="sized to a time budget by metanas.training.budget")


def epochs_and_steps(epochs: float, steps_per_epoch: int, *, least: float = 0.0,
                     max_epochs: int = MAX_EPOCHS) -> tuple[int, int | None]:
    """Whole epochs to run and the step cap of a fractional plan (``None``: whole epochs):
    2.6 epochs are 3 epochs, the last one stopped at 60% of its steps. ``least``: epochs
    that must run (at least one step more), ``max_epochs`` caps."""
    epochs = min(max(epochs, least), float(max_epochs))
    steps = max(int(epochs * steps_per_epoch), int(math.ceil(least * steps_per_epoch)) + 1)
    whole = min(max_epochs, max(1, math.ceil(steps / steps_per_epoch)))
    return whole, (None if steps >= whole * steps_per_epoch else steps)


def replan_epochs(recipe: Recipe, epoch_seconds: float, seconds_left: float,
                  steps_per_epoch: int, steps_done: int | None = None, *,
                  max_epochs: int = MAX_EPOCHS) -> Recipe:
    """The recipe with as many epochs (to a step: the last one may be partial) as fit in
    ``REPLAN_SAFETY`` of ``seconds_left`` at the measured ``epoch_seconds`` (at least one step
    more, at most ``max_epochs``): the probe's few steps misjudge an epoch by 10-30% on a
    shared CPU, the warm-up's full epochs do not. ``steps_done``: where training is (default:
    the end of the warm-up); past the warm-up the cosine so far is kept up to there and a new
    horizon starts (``lr_horizons``)."""
    warm = recipe.warmup_epochs * steps_per_epoch
    done = warm if steps_done is None else steps_done
    more = REPLAN_SAFETY * seconds_left / epoch_seconds if epoch_seconds > 0 else 0.0
    epochs, steps = epochs_and_steps(done / steps_per_epoch + more, steps_per_epoch,
                                     least=done / steps_per_epoch, max_epochs=max_epochs)
    horizons = recipe.lr_horizons
    if done > warm:
        horizons = ((horizons or ((warm, steps_per_epochs(recipe, steps_per_epoch)),))
                    + ((done, steps or epochs * steps_per_epoch),))
    return fit_recipe(recipe.C, recipe.N, epochs, recipe.batch_size, recipe.augment,
                      recipe.resolution, recipe.warmup_epochs, steps, horizons)


def plan_training(arch: NB201Arch | str, task: Task, budget_left: float, *, augment: str,
                  seed: int = 0, device: str | torch.device | None = "cpu",
                  sizes: tuple[tuple[int, int], ...] = SIZES, min_epochs: int = MIN_EPOCHS,
                  max_epochs: int = MAX_EPOCHS, progress: bool = False,
                  init_model: torch.nn.Module | None = None) -> Plan:
    """Probe ``sizes`` and choose the recipe for ``budget_left`` seconds (see the module
    docstring); the probe's own time is taken from ``budget_left``.

    ``init_model`` (training starts from it, :func:`~metanas.training.trainer.train_architecture`):
    its size is fixed, so the only candidate is its (C, N), probed on copies of it (its stem
    may differ from NB201's); only batch size and epochs are planned."""
    arch = parse(arch)
    if init_model is not None:
        sizes = ((int(init_model.config["C"]), int(init_model.config["N"])),)
    dev = resolve_device(device)
    start = time.perf_counter()
    (x_tr, y_tr), (x_va, _), (x_te, _) = split_tensors(task, task.resolution, dev)
    n_train, n_val, n_test = len(y_tr), len(x_va), len(x_te)
    batch = min(pick_batch_size(n_train), n_train)
    if batch < 2:
        raise ConfigError("fit needs at least 2 training images")
    steps = math.ceil(n_train / batch)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n_train, generator=gen)[:batch].to(dev)
    xb_raw, yb = x_tr[idx], y_tr[idx]
    probes: list[dict[str, Any]] = []
    chosen: dict[str, Any] | None = None
    with Bars(progress, transient=True) as bars:
        bar = bars.add(f"probe throughput (at most {len(sizes)} sizes)", len(sizes))
        for C, N in sizes:
            recipe = fit_recipe(C, N, 1, batch, augment)
            probe = _probe(arch, task, recipe, xb_raw, yb, x_va, seed, gen, dev, init_model)
            epoch_s = steps * probe["step_seconds"] + n_val * probe["eval_image_seconds"]
            left = SAFETY * (budget_left - (time.perf_counter() - start)
                             - n_test * probe["eval_image_seconds"])
            probe.update(C=C, N=N, epoch_seconds=epoch_s,
                         epochs_fit=max(0, int(left // epoch_s)))
            probes.append(probe)
            bars.advance(bar, status=f"C={C} N={N}: {epoch_s:.2g} s/epoch")
            if chosen is None or probe["epochs_fit"] >= min_epochs:
                chosen = probe
            if probe["epochs_fit"] < min_epochs or \
                    time.perf_counter() - start > PROBE_SHARE * budget_left:
                break
    assert chosen is not None
    probe_s = time.perf_counter() - start
    eval_s = n_test * chosen["eval_image_seconds"]
    left = SAFETY * (budget_left - probe_s - eval_s)
    fit_epochs = left / chosen["epoch_seconds"]
    if fit_epochs < 1 / steps:
        need = probe_s + eval_s + chosen["epoch_seconds"] / SAFETY
        raise ConfigError(f"a budget of {budget_left:.3g} s is too small: one epoch of the "
                          f"smallest network (C={chosen['C']}, N={chosen['N']}) takes about "
                          f"{chosen['epoch_seconds']:.2g} s here; give at least "
                          f"{math.ceil(need * 1.5)} s")
    fixed = (f"size fixed by the initial network (C={chosen['C']}, N={chosen['N']}), "
             if init_model is not None else "")
    rule = fixed + (f"largest of {len(sizes)} sizes with >= {min_epochs} epochs in the budget "
            f"(probed {len(probes)}), batch {batch} (>= {MIN_STEPS_PER_EPOCH} steps/epoch), "
            f"epochs = what fits (<= {max_epochs}), replanned after a timed warm-up epoch")
    epochs, max_steps = epochs_and_steps(fit_epochs, steps, least=0.0, max_epochs=max_epochs)
    warmup = 1 if fit_epochs >= WARMUP_FROM else 0
    return Plan(recipe=fit_recipe(chosen["C"], chosen["N"], epochs, batch, augment,
                                  warmup=warmup, max_steps=max_steps),
                epoch_seconds=chosen["epoch_seconds"], eval_seconds=eval_s,
                probe_seconds=probe_s, probes=probes, rule=rule)


def _probe(arch, task, recipe, xb_raw, yb, x_va, seed, gen, dev,
           init_model=None) -> dict[str, float]:
    """Median seconds of a training step (augmentation included); eval seconds per image."""
    torch.manual_seed(seed)
    model = build_model(arch, task, recipe, init_model).to(dev)
    opt, sched, _ = make_optimizer(model, recipe, len(yb) * (PROBE_STEPS + 1))
    times = []
    for _ in range(PROBE_STEPS + 1):
        model.train()
        t0 = time.perf_counter()
        train_step(model, opt, sched, augment_batch(xb_raw, recipe.augment, gen), yb, recipe)
        _sync(dev)
        times.append(time.perf_counter() - t0)
    xv = x_va[:recipe.eval_batch_size]
    zeros = torch.zeros(len(xv), dtype=torch.long, device=dev)
    evals = []
    for _ in range(2):  # the first pass pays for warm-up
        t0 = time.perf_counter()
        evaluate(model, xv, zeros, recipe.eval_batch_size)
        _sync(dev)
        evals.append(time.perf_counter() - t0)
    eval_s = evals[-1] / max(len(xv), 1)
    return {"step_seconds": statistics.median(times[1:]), "eval_image_seconds": eval_s}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
