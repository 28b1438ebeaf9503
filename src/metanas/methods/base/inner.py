"""The inner loop shared by BASE meta-training, BASE adaptation and the DARTS/GDAS baselines:
SGD steps on a supernet's weights and architecture logits.

* single level (BASE): weights and logits take a step on the same minibatch and the same loss
  (one backward pass), with fresh op-weight noise every step;
* bilevel first order (DARTS, GDAS): a logits step on a validation minibatch, then a weights
  step on a training minibatch.

Weights use SGD (Nesterov momentum, weight decay); logits use Adam (betas 0.5/0.999 as in
DARTS), both fresh for each call, so a task's adaptation depends only on the starting state,
its data and its generator. The two update rules are written out here (PyTorch's semantics)
instead of using ``torch.optim``: the first optimizer object of a process imports TorchDynamo,
which took 8 s on this machine, more than a whole default search.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from metanas.errors import ConfigError
from metanas.supernet import SAMPLING_MODES, Supernet, TemperatureSchedule
from metanas.training.trainer import augment_batch


@dataclass(frozen=True)
class InnerConfig:
    steps: int
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    arch_lr: float = 0.01
    arch_weight_decay: float = 1e-3
    sampling: str = "gumbel"
    freeze_arch: bool = False
    bilevel: bool = False
    augment: str = "crop-flip"
    grad_clip: float = 5.0
    arch_warmup: int = 0
    """Steps in which only the weights move: logits that chase freshly reset, untrained
    weights favour parameter-free ops (pooling, skip), the collapse DARTS is known for."""

    def __post_init__(self) -> None:
        if self.arch_warmup < 0:
            raise ConfigError(f"arch_warmup must be >= 0 steps, got {self.arch_warmup}")
        if self.steps < 0 or self.batch_size < 2:
            raise ConfigError(f"inner loop needs steps >= 0 and batch_size >= 2, got "
                              f"steps={self.steps} batch_size={self.batch_size}")
        if self.sampling not in SAMPLING_MODES[:3]:
            raise ConfigError(f"sampling must be gumbel, softmax or hard, got {self.sampling!r}")
        if not (self.lr > 0 and self.arch_lr >= 0):
            raise ConfigError(f"learning rates must be positive, got lr={self.lr} "
                              f"arch_lr={self.arch_lr}")
        if self.augment not in ("none", "crop", "crop-flip"):
            raise ConfigError(f"augment must be none, crop or crop-flip, got {self.augment!r}")


@dataclass
class TaskData:
    """Normalized tensors of one task on the device: training split and (bilevel) validation."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    @classmethod
    def from_task(cls, task, device: torch.device | str = "cpu") -> TaskData:
        return cls(task.x_train.to(device), task.y_train.to(device), task.x_val.to(device),
                   task.y_val.to(device))


@dataclass
class InnerStats:
    steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)

    @property
    def mean_loss(self) -> float:
        return sum(self.losses) / len(self.losses) if self.losses else float("nan")


class _SGD:
    """SGD with (Nesterov) momentum and L2 weight decay, as ``torch.optim.SGD``."""

    def __init__(self, params: list[torch.Tensor], lr: float, momentum: float,
                 weight_decay: float) -> None:
        self.params, self.lr, self.momentum, self.wd = params, lr, momentum, weight_decay
        self.bufs: list[torch.Tensor | None] = [None] * len(params)

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.add(p, alpha=self.wd) if self.wd else p.grad
            if self.momentum:
                buf = self.bufs[i]
                if buf is None:
                    buf = self.bufs[i] = g.clone()
                else:
                    buf.mul_(self.momentum).add_(g)
                g = g.add(buf, alpha=self.momentum)  # Nesterov
            p.add_(g, alpha=-self.lr)


class _Adam:
    """Adam with L2 weight decay added to the gradient, as ``torch.optim.Adam``."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float],
                 weight_decay: float, eps: float = 1e-8) -> None:
        self.params, self.lr, self.betas, self.wd, self.eps = params, lr, betas, weight_decay, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            g = p.grad.add(p, alpha=self.wd) if self.wd else p.grad
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / c2).sqrt_().add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / c1)


def _zero_grad(params: list[torch.Tensor]) -> None:
    for p in params:
        p.grad = None


class _Batches:
    """Endless shuffled minibatches (reshuffled each pass) from ``generator``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, size: int, generator: torch.Generator,
                 augment: str) -> None:
        if len(y) < 2:
            raise ConfigError(f"a task split needs at least 2 images, got {len(y)}")
        self.x, self.y, self.gen, self.augment = x, y, generator, augment
        self.size = min(size, len(y))
        self.order = torch.empty(0, dtype=torch.long)
        self.pos = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pos + self.size > len(self.order):
            self.order = torch.randperm(len(self.y), generator=self.gen)
            self.pos = 0
        idx = self.order[self.pos:self.pos + self.size].to(self.y.device)
        self.pos += self.size
        return augment_batch(self.x[idx], self.augment, self.gen), self.y[idx]


def run_inner_loop(
    net: Supernet,
    data: TaskData,
    config: InnerConfig,
    *,
    generator: torch.Generator,
    tau: TemperatureSchedule | float = 1.0,
    deadline: float | None = None,
    callback: Callable[[int], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> InnerStats:
    """Train ``net`` in place for ``config.steps`` steps (or until ``time.perf_counter()``
    passes ``deadline``). ``callback(step)`` runs before the first step and after each step
    (e.g. to record an accuracy curve; its time is not counted); ``on_step(step, loss)``
    reports progress."""
    tau_at = tau if callable(tau) else (lambda _s, t=float(tau): t)
    w_params = net.weight_parameters()
    a_params = net.arch_parameters()
    w_opt = _SGD(w_params, config.lr, config.momentum, config.weight_decay)
    train_arch = not config.freeze_arch and config.arch_lr > 0
    a_opt = _Adam(a_params, config.arch_lr, (0.5, 0.999),
                  config.arch_weight_decay) if train_arch else None
    for p in a_params:
        p.requires_grad_(train_arch)
    train = _Batches(data.x_train, data.y_train, config.batch_size, generator, config.augment)
    val = None
    if config.bilevel and train_arch:
        if data.x_val is None or len(data.y_val) < 2:
            raise ConfigError("bilevel search needs a validation split with >= 2 images")
        val = _Batches(data.x_val, data.y_val, config.batch_size, generator, config.augment)
    stats = InnerStats()
    paused = 0.0
    if callback is not None:
        callback(0)
    start = time.perf_counter()
    net.train()
    try:
        for step in range(config.steps):
            if deadline is not None and time.perf_counter() - paused >= deadline:
                break
            t = tau_at(step)
            if val is not None and step >= config.arch_warmup:  # first-order bilevel: logits
                # on validation data first
                xb, yb = val.next()
                loss = F.cross_entropy(net(xb, net.sample_weights(config.sampling, t, generator)),
                                       yb)
                grads = torch.autograd.grad(loss, a_params)
                for p, g in zip(a_params, grads, strict=True):
                    p.grad = g
                a_opt.step()
            xb, yb = train.next()
            loss = F.cross_entropy(net(xb, net.sample_weights(config.sampling, t, generator)), yb)
            _zero_grad(w_params)
            _zero_grad(a_params)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(w_params, config.grad_clip)
            w_opt.step()
            if a_opt is not None and val is None and step >= config.arch_warmup:
                a_opt.step()
            stats.steps += 1
            value = float(loss.detach())
            stats.losses.append(value)
            if on_step is not None:
                on_step(step + 1, value)
            if callback is not None:
                t0 = time.perf_counter()
                callback(step + 1)
                net.train()
                paused += time.perf_counter() - t0
    finally:
        _zero_grad(w_params)
        _zero_grad(a_params)
        for p in a_params:
            p.requires_grad_(True)
    stats.seconds = time.perf_counter() - start - paused
    return stats


@torch.no_grad()
def evaluate(net: Supernet, x: torch.Tensor, y: torch.Tensor, *, weights: str = "expected",
             tau: float = 1.0, batch: int = 256, calibrate: torch.Tensor | None = None) -> float:
    """Accuracy in eval mode with ``expected`` op weights (``softmax(logits / tau)``, no noise)
    or the ``argmax`` cell.

    With ``calibrate`` (training images), BatchNorm statistics are first re-estimated on them
    under these op weights (the running averages gathered under noisy, changing mixtures fit a
    fixed mixture poorly); the network's own statistics are restored afterwards.
    """
    if len(y) == 0:
        return float("nan")
    was = net.training
    w = net.sample_weights("softmax" if weights == "expected" else "argmax", tau)
    saved = None
    if calibrate is not None and len(calibrate) > 1:
        saved = recalibrate_batchnorm(net, calibrate, w, batch)
    net.eval()
    correct = 0
    for i in range(0, len(y), batch):
        correct += int((net(x[i:i + batch], w).argmax(1) == y[i:i + batch]).sum())
    if saved is not None:
        net.load_state_dict(saved, strict=False)
    net.train(was)
    return correct / len(y)


def recalibrate_batchnorm(net: Supernet, x: torch.Tensor, weights, batch: int = 256,
                          max_images: int = 512) -> dict[str, torch.Tensor]:
    """Re-estimate every BatchNorm's running statistics on ``x`` (cumulative average);
    returns the previous buffers so the caller can restore them."""
    saved = {k: v.clone() for k, v in net.state_dict().items() if "running_" in k
             or "num_batches_tracked" in k}
    reestimate_batchnorm(net, lambda b: net(b, weights), x, batch, max_images)
    return saved


@torch.no_grad()
def reestimate_batchnorm(net: torch.nn.Module, forward, x: torch.Tensor, batch: int = 256,
                         max_images: int = 512) -> None:
    """Every BatchNorm of ``net`` reset and re-estimated as a cumulative average over
    ``forward`` of (the first ``max_images`` of) ``x``; momenta restored, ``net`` left in
    train mode."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    x = x[:max_images]
    for i in range(0, len(x), batch):
        if len(x[i:i + batch]) > 1:
            forward(x[i:i + batch])
    for m, mom in zip(bns, momenta, strict=True):
        m.momentum = mom
