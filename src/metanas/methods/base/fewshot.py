"""BASE's few-shot variant: architecture search with a MAML inner loop through the supernet,
then the derived cell trained with MAML and compared with the 4-layer conv MAML baseline.

* Episodes: N-way K-shot tasks with Q queries per class drawn from one split of a dataset
  (Omniglot: background classes for meta-training, evaluation classes for testing), seeded per
  episode index, so every model is tested on the same episodes.
* MAML (:func:`maml_train`): per episode, a zero-initialised classifier and the model's
  meta-parameters take ``inner_steps`` SGD steps on the support set (through
  ``torch.func.functional_call``); the query loss of the adapted parameters updates the
  meta-parameters with Adam. First order by default (the inner gradients are constants);
  ``first_order=False`` back-propagates through the unrolled inner loop (second order).
* Search (:func:`search_cell`): MAML on an NB201 supernet whose meta-parameters include the
  architecture logits, adapted in the inner loop with the weights (Gumbel-softmax mixing, fresh
  noise every forward pass); the derived cell is the argmax of the meta-learned distribution.
* BatchNorm uses the statistics of the batch at hand (support or query set), as MAML does.
* Evaluation (:func:`maml_evaluate`): mean query accuracy over test episodes after
  ``test_inner_steps`` adaptation steps, with its 95% interval (1.96 standard errors).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metanas.errors import ConfigError, DatasetError
from metanas.methods.base.derive import rank_nb201
from metanas.progress import Bars
from metanas.spaces.nb201 import NB201Arch, NB201Network
from metanas.supernet import NB201Supernet, Supernet

_EPISODE_TAG = 47


@dataclass
class EpisodeSource:
    """Images of one split (normalized float (N, 1, R, R)) and the image indices per class."""

    x: torch.Tensor
    by_class: list[np.ndarray]
    name: str

    def episode(self, index: int, n_way: int, k_shot: int, q_query: int, seed: int = 0):
        """(x_support, y_support, x_query, y_query) of episode ``index``."""
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_EPISODE_TAG,
                                                                            int(index))))
        classes = rng.choice(len(self.by_class), n_way, replace=False)
        sup, qry = [], []
        for c in classes:
            idx = rng.choice(self.by_class[c], k_shot + q_query, replace=False)
            sup.append(idx[:k_shot])
            qry.append(idx[k_shot:])
        ys = torch.arange(n_way).repeat_interleave(k_shot)
        yq = torch.arange(n_way).repeat_interleave(q_query)
        return (self.x[np.concatenate(sup)], ys, self.x[np.concatenate(qry)], yq)


def load_omniglot(path: str | Path, resolution: int = 32) -> dict[str, EpisodeSource]:
    """``{"background": ..., "evaluation": ...}`` from the packed Omniglot ``.npz`` (``x``,
    ``y``, ``class_split``); pixels scaled with the background split's mean and std."""
    path = Path(path)
    try:
        with np.load(path) as d:
            x, y, split = d["x"], d["y"].astype(np.int64), d["class_split"]
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"{path} is not the packed Omniglot file (x, y, class_split): "
                           f"{exc}") from None
    xt = torch.from_numpy(x).float().div_(255.0)[:, None]
    if resolution != xt.shape[-1]:
        xt = F.interpolate(xt, size=(resolution, resolution), mode="bilinear", antialias=True)
    background = np.isin(y, np.flatnonzero(split == 0))
    mean, std = float(xt[background].mean()), float(xt[background].std())
    xt = (xt - mean) / std
    out = {}
    for code, name in ((0, "background"), (1, "evaluation")):
        classes = np.flatnonzero(split == code)
        order = np.argsort(y, kind="stable")
        starts = np.searchsorted(y[order], classes)
        ends = np.searchsorted(y[order], classes, side="right")
        out[name] = EpisodeSource(xt, [order[a:b] for a, b in zip(starts, ends, strict=True)],
                                  f"omniglot-{name}")
    return out


class Conv4(nn.Module):
    """The standard MAML backbone: 4 x (Conv3x3-BN-ReLU-MaxPool2), then a linear classifier."""

    def __init__(self, hidden: int = 32, in_channels: int = 1, resolution: int = 32,
                 num_classes: int = 5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(4):
            layers += [nn.Conv2d(c, hidden, 3, padding=1), nn.BatchNorm2d(hidden),
                       nn.ReLU(inplace=False), nn.MaxPool2d(2)]
            c = hidden
        self.features = nn.Sequential(*layers)
        side = resolution
        for _ in range(4):
            side //= 2
        self.c_out = hidden * max(1, side) ** 2
        self.classifier = nn.Linear(self.c_out, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@dataclass(frozen=True)
class MAMLConfig:
    n_way: int = 5
    k_shot: int = 1
    q_query: int = 15
    """Query images per class (the outer loss)."""
    iterations: int = 300
    meta_batch: int = 4
    """Episodes per outer step."""
    inner_steps: int = 5
    test_inner_steps: int = 10
    inner_lr: float = 0.1
    meta_lr: float = 1e-3
    arch_meta_lr: float = 3e-3
    """Outer step size of the architecture logits (the weights use ``meta_lr``)."""
    first_order: bool = True
    """First-order MAML (no second derivatives), as BASE's few-shot runs."""
    sampling: str = "gumbel"
    tau: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_way", "k_shot", "q_query", "iterations", "meta_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_way < 2:
            raise ConfigError(f"n_way must be >= 2, got {self.n_way}")


class Learner:
    """A model seen as meta-parameters (everything but the classifier) plus a classifier that
    starts at zero in every episode; forward passes go through ``functional_call``."""

    def __init__(self, model: nn.Module, config: MAMLConfig) -> None:
        self.model = model.train()
        self.config = config
        self.is_supernet = isinstance(model, Supernet)
        self.names = [n for n, _ in model.named_parameters() if not n.startswith("classifier.")]
        self.meta = dict((n, p) for n, p in model.named_parameters() if n in self.names)
        self.buffers = dict(model.named_buffers())
        self.c_out = model.classifier.in_features

    def arch_names(self) -> list[str]:
        return [n for n in self.names if n.startswith("arch.")]

    def forward(self, params: dict[str, torch.Tensor], x: torch.Tensor,
                gen: torch.Generator | None) -> torch.Tensor:
        kwargs: dict[str, Any] = {}
        if self.is_supernet:
            kwargs = {"sampling": self.config.sampling, "tau": self.config.tau,
                      "generator": gen}
        return functional_call(self.model, {**params, **self.buffers}, (x,), kwargs)

    def adapt(self, xs: torch.Tensor, ys: torch.Tensor, steps: int, *, create_graph: bool,
              gen: torch.Generator | None) -> dict[str, torch.Tensor]:
        n_way = self.config.n_way
        fast = dict(self.meta)
        fast["classifier.weight"] = torch.zeros(n_way, self.c_out, requires_grad=True)
        fast["classifier.bias"] = torch.zeros(n_way, requires_grad=True)
        for _ in range(steps):
            loss = F.cross_entropy(self.forward(fast, xs, gen), ys)
            keys = list(fast)
            grads = torch.autograd.grad(loss, [fast[k] for k in keys], create_graph=create_graph,
                                        allow_unused=True)
            fast = {k: (fast[k] if g is None else fast[k] - self.config.inner_lr * g)
                    for k, g in zip(keys, grads, strict=True)}
        return fast


def maml_train(model: nn.Module, source: EpisodeSource, config: MAMLConfig, *,
               progress: bool = False) -> list[dict[str, float]]:
    """Meta-train ``model`` in place with (first-order) MAML; returns the loss/accuracy log."""
    torch.manual_seed(config.seed)
    learner = Learner(model, config)
    arch = set(learner.arch_names())
    groups = [{"params": [p for n, p in learner.meta.items() if n not in arch],
               "lr": config.meta_lr}]
    if arch:
        groups.append({"params": [learner.meta[n] for n in sorted(arch)],
                       "lr": config.arch_meta_lr, "betas": (0.5, 0.999)})
    opt = torch.optim.Adam(groups)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    with Bars(progress, transient=True) as bars:
        bar = bars.add(f"MAML {type(model).__name__}", config.iterations)
        for it in range(config.iterations):
            opt.zero_grad(set_to_none=True)
            loss_sum, correct, total = 0.0, 0, 0
            for b in range(config.meta_batch):
                xs, ys, xq, yq = source.episode(it * config.meta_batch + b, config.n_way,
                                                config.k_shot, config.q_query, config.seed)
                fast = learner.adapt(xs, ys, config.inner_steps,
                                     create_graph=not config.first_order, gen=gen)
                out = learner.forward(fast, xq, gen)
                loss = F.cross_entropy(out, yq) / config.meta_batch
                loss.backward()
                loss_sum += float(loss.detach()) * config.meta_batch
                correct += int((out.argmax(1) == yq).sum())
                total += len(yq)
            opt.step()
            history.append({"iteration": it + 1, "loss": loss_sum / config.meta_batch,
                            "accuracy": correct / total,
                            "seconds": round(time.perf_counter() - start, 2)})
            bars.advance(bar, status=f"query acc {correct / total:.3f}")
    return history


def maml_evaluate(model: nn.Module, source: EpisodeSource, config: MAMLConfig, *,
                  episodes: int = 600, seed: int = 1, progress: bool = False) -> dict[str, Any]:
    """Query accuracy after ``test_inner_steps`` steps on each of ``episodes`` test episodes:
    mean and 95% interval (1.96 standard errors)."""
    learner = Learner(model, config)
    gen = torch.Generator().manual_seed(seed)
    accs = []
    with Bars(progress, transient=True) as bars:
        bar = bars.add(f"MAML test {type(model).__name__}", episodes)
        for i in range(episodes):
            xs, ys, xq, yq = source.episode(i, config.n_way, config.k_shot, config.q_query, seed)
            fast = learner.adapt(xs, ys, config.test_inner_steps, create_graph=False, gen=gen)
            with torch.no_grad():
                accs.append(float((learner.forward(fast, xq, gen).argmax(1) == yq)
                                  .float().mean()))
            bars.advance(bar)
    a = np.array(accs)
    return {"mean": float(a.mean()), "ci95": float(1.96 * a.std(ddof=1) / math.sqrt(len(a)))
            if len(a) > 1 else float("nan"), "episodes": len(a), "accuracies": a.tolist()}


def search_cell(source: EpisodeSource, config: MAMLConfig, *, C: int = 8, N: int = 1,
                resolution: int = 32, feature_size: int = 16,
                progress: bool = False) -> tuple[NB201Arch, NB201Supernet, list[dict]]:
    """MAML through the NB201 supernet (weights and logits); the argmax cell."""
    torch.manual_seed(config.seed)
    net = NB201Supernet(C=C, N=N, resolutions=(resolution,), feature_size=feature_size,
                        num_classes=config.n_way)
    history = maml_train(net, source, config, progress=progress)
    arch = rank_nb201(net.probabilities()["cell"], 1)[0][0]
    return arch, net, history


def cell_network(arch: NB201Arch | str, *, C: int = 8, N: int = 1, resolution: int = 32,
                 feature_size: int = 16, n_way: int = 5, seed: int = 0) -> NB201Network:
    """A freshly initialised NB201 network of ``arch`` with the supernet's input head, so the
    derived cell is trained exactly as it was searched."""
    torch.manual_seed(seed)
    net = NB201Supernet(C=C, N=N, resolutions=(resolution,), feature_size=feature_size,
                        num_classes=n_way)
    return net.export_network(arch, resolution).train()


def config_dict(config: MAMLConfig) -> dict[str, Any]:
    return asdict(config)
