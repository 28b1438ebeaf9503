"""Final training within a wall-clock budget: plan (:mod:`.budget`), then the one training loop.

``metanas fit`` and ``metanas search --train --train-budget`` both end here (through
:func:`metanas.api.fit`). The budget runs from ``start`` (the caller's clock: the API starts it
before loading the data) to the end of the final evaluation. The trainer gets a deadline
that leaves room for that evaluation and for writing the files, and stops there instead of
failing (``stop_at_deadline``); it validates every epoch and ends with the best checkpoint.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metanas.errors import ConfigError
from metanas.spaces.nb201 import NB201Arch, NB201Network
from metanas.spaces.nb201.network import nb201_side
from metanas.tasks import Task
from metanas.training.budget import MAX_EPOCHS, MIN_EPOCHS, SIZES, Plan, plan_training
from metanas.training.recipes import Recipe, get_recipe
from metanas.training.trainer import TrainResult, check_init_model, train_architecture

FINISH_SECONDS = 1.0
"""Reserved at the end for saving the model and the curves, plus 2% of the budget."""


def augment_for(channels: int, flip: bool | None) -> str:
    """``crop-flip`` for colour images, ``crop`` for single-channel ones (digits, characters:
    a mirrored glyph is another glyph, or none); ``flip`` overrides."""
    if flip is None:
        flip = channels == 3
    return "crop-flip" if flip else "crop"


FIT_VAL_FRACTION = 0.1
"""The share of the labelled images a fit validates on by default (the rest trains)."""
FIT_SIDES = (16, 32)
"""``fit`` trains at the dataset's image side clamped to this range (digits' 8 px -> 16,
MNIST's 28 stays 28, Tiny-ImageNet's 64 -> 32): below 16 px the NB201 network's two
reductions leave almost nothing; above 32 a CPU budget buys too few epochs."""


def fit_resolution(image_size: tuple[int, int]) -> int:
    """The side ``metanas fit`` trains a dataset of ``image_size`` images at by default."""
    return nb201_side(min(max(max(image_size), FIT_SIDES[0]), FIT_SIDES[1]))


def check_budget(budget: Any, option: str = "--budget") -> float:
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or \
            not 0 < budget < float("inf"):
        raise ConfigError(f"{option} must be a finite number of seconds > 0, got {budget!r}")
    return float(budget)


def fit_architecture(arch: NB201Arch | str, task: Task, budget: float, *, start: float,
                     seed: int = 0, device: str = "cpu", flip: bool | None = None,
                     recipe: str | Recipe | None = None, progress: bool = False,
                     sizes: tuple[tuple[int, int], ...] = SIZES, min_epochs: int = MIN_EPOCHS,
                     max_epochs: int = MAX_EPOCHS, init_model: NB201Network | None = None,
                     ) -> tuple[TrainResult, NB201Network, Plan | None]:
    """Plan (unless ``recipe`` replays an earlier plan) and train within ``start + budget``.

    ``init_model``: training starts from a copy of this network; its C and N are kept, the
    probe plans only batch size and epochs (a replayed ``recipe`` must have its C and N)."""
    budget = check_budget(budget)
    if init_model is not None:
        check_init_model(init_model, arch, task)
    finish = FINISH_SECONDS + 0.02 * budget
    if recipe is None:
        left = start + budget - finish - time.perf_counter()
        if left <= 0:
            raise ConfigError(f"a budget of {budget:.3g} s was spent before training began "
                              "(loading the data)")
        plan = plan_training(arch, task, left, augment=augment_for(task.channels, flip),
                             seed=seed, device=device, sizes=sizes, min_epochs=min_epochs,
                             max_epochs=max_epochs, progress=progress,
                             init_model=init_model)
        rec, reserve = plan.recipe, plan.eval_seconds * (1 + len(task.y_val) /
                                                         max(len(task.y_test), 1))
    else:
        plan, rec, reserve = None, get_recipe(recipe), 0.0
    deadline = start + budget - finish - reserve
    replan = (functools.partial(plan.replan, max_epochs=max_epochs)
              if plan is not None and rec.warmup_epochs else None)
    result, model = train_architecture(arch, task, rec, seed=seed, device=device,
                                       progress=progress, return_model=True,
                                       deadline=deadline, keep_best=True,
                                       stop_at_deadline=True, init_model=init_model,
                                       replan=replan)
    return result, model, plan


def curve_summary(result: TrainResult) -> dict[str, Any]:
    """What a model card keeps of the curve: how far training got and where it was best."""
    curve = result.curve
    vals = [p["val_acc"] for p in curve if p["val_acc"] is not None]
    return {"epochs_planned": result.epochs, "epochs_run": len(curve),
            "best_epoch": result.best_epoch, "best_val_acc": max(vals) if vals else None,
            "final_train_loss": curve[-1]["train_loss"] if curve else None,
            "train_seconds": curve[-1]["seconds"] if curve else None,
            "stopped_at_deadline": len(curve) < result.epochs}


def write_curves(stem: Path, result: TrainResult, meta: dict[str, Any]) -> dict[str, str]:
    """``STEM.curves.json`` (per-epoch train loss, val acc, lr, seconds) and
    ``STEM.curves.png``; returns their paths."""
    from metanas.figures import pyplot, save_png
    from metanas.jsonio import write_json

    plt = pyplot()
    json_path = stem.with_name(stem.name + ".curves.json")
    png_path = stem.with_name(stem.name + ".curves.png")
    payload = {**meta, "summary": curve_summary(result), "curve": result.curve}
    write_json(json_path, payload, option="the curves file")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = [p["epoch"] for p in result.curve]
    ax_loss.plot(epochs, [p["train_loss"] for p in result.curve], marker=".")
    ax_loss.set(xlabel="epoch", ylabel="train loss", title=meta.get("title", ""))
    ax_lr = ax_loss.twinx()
    ax_lr.plot(epochs, [p["lr"] for p in result.curve], color="grey", ls=":")
    ax_lr.set_ylabel("lr (dotted)")
    ax_acc.plot(epochs, [p["val_acc"] for p in result.curve], marker=".", color="C1")
    if result.best_epoch:
        ax_acc.axvline(result.best_epoch, color="grey", ls="--", lw=0.8)
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy",
               title=f"best @ epoch {result.best_epoch} (kept)")
    fig.tight_layout()
    save_png(fig, png_path, dpi=100)
    return {"curves_json": str(json_path), "curves_png": str(png_path)}



@dataclass
class FitResult:
    """A budgeted final training: the model (best validation checkpoint), its metrics, the
    recipe the probe chose (and how), the per-epoch curve, and the files written."""

    arch: str
    dataset: str
    budget: float
    seconds: float
    """Wall time of the whole fit, data loading and file writing included."""
    metrics: dict[str, Any]
    recipe: dict[str, Any]
    plan: dict[str, Any] | None
    curve: list[dict[str, Any]]
    summary: dict[str, Any]
    files: dict[str, str]
    task: dict[str, Any]
    """The task trained on (``Task.describe()``: n_train, n_val, n_test, resolution, ...)."""
    model: NB201Network = field(repr=False)

    @property
    def test_acc(self) -> float:
        return self.metrics["test_acc"]

    @property
    def val_acc(self) -> float:
        return self.metrics["val_acc"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, without the model."""
        d = {f: getattr(self, f) for f in ("arch", "dataset", "budget", "seconds", "metrics",
                                            "recipe", "plan", "summary", "curve", "files",
                                            "task")}
        return {**d, "test_acc": self.test_acc, "val_acc": self.val_acc}
