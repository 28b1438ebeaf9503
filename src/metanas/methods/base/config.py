"""BASE's configuration: supernet size, the task distribution, Algorithm 1's loops and the
defaults adaptation uses at search time. Stored in every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from metanas.errors import ConfigError
from metanas.methods.base.inner import InnerConfig
from metanas.methods.interface import config_from_options
from metanas.supernet import TemperatureSchedule


@dataclass(frozen=True)
class BASEConfig:
    # supernet
    space: str = "nb201"
    C: int = 8
    N: int = 1
    """NB201: cells per stage."""
    layers: int = 5
    """DARTS: number of cells."""
    resolutions: tuple[int, ...] = (16, 32)
    feature_size: int = 16
    # task distribution
    n_way: int = 5
    max_train_per_class: int = 100
    # Algorithm 1
    meta_steps: int = 300
    tasks_per_step: int = 4
    inner_steps: int = 10
    # the inner loop's optimiser: InnerConfig's defaults, named once there
    batch_size: int = InnerConfig.batch_size
    lr: float = InnerConfig.lr
    momentum: float = InnerConfig.momentum
    weight_decay: float = InnerConfig.weight_decay
    arch_lr: float = InnerConfig.arch_lr
    arch_weight_decay: float = InnerConfig.arch_weight_decay
    meta_lr: float = 1.0
    meta_lr_end: float = 0.1
    """Reptile step size lambda, annealed linearly from meta_lr to meta_lr_end."""
    sampling: str = InnerConfig.sampling
    tau_start: float = 1.0
    tau_end: float = 0.5
    tau_schedule: str = "exp"
    augment: str = InnerConfig.augment
    seed: int = 0
    # adaptation defaults (search time)
    adapt_steps: int = 100
    adapt_batch_size: int = 64
    adapt_lr: float = InnerConfig.lr
    adapt_arch_lr: float = InnerConfig.arch_lr
    adapt_tau: float | None = None
    """Gumbel temperature while adapting; None continues at the end of meta-training (tau_end)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolutions", tuple(int(r) for r in self.resolutions))
        if self.space not in ("nb201", "darts"):
            raise ConfigError(f"space must be nb201 or darts, got {self.space!r}")
        for name in ("C", "N", "layers", "meta_steps", "tasks_per_step", "feature_size",
                     "max_train_per_class"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.n_way < 2:
            raise ConfigError(f"n_way must be >= 2, got {self.n_way}")
        if not 0 <= self.meta_lr_end <= self.meta_lr:
            raise ConfigError(f"need 0 <= meta_lr_end <= meta_lr, got {self.meta_lr_end} and "
                              f"{self.meta_lr}")
        if self.adapt_steps < 0:
            raise ConfigError(f"adapt_steps must be >= 0, got {self.adapt_steps}")
        self.inner()
        self.adaptation()
        self.temperature()

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> BASEConfig:
        return config_from_options(cls, options, "base")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resolutions"] = list(self.resolutions)
        return d

    def replace(self, **changes) -> BASEConfig:
        return dataclasses.replace(self, **changes)

    def supernet_config(self) -> dict[str, Any]:
        common = {"space": self.space, "C": self.C, "resolutions": list(self.resolutions),
                  "feature_size": self.feature_size}
        return {**common, "N": self.N} if self.space == "nb201" else {**common,
                                                                      "layers": self.layers}

    def inner(self) -> InnerConfig:
        """The meta-training inner loop (T steps, weights and logits jointly)."""
        return InnerConfig(steps=self.inner_steps, batch_size=self.batch_size, lr=self.lr,
                           momentum=self.momentum, weight_decay=self.weight_decay,
                           arch_lr=self.arch_lr, arch_weight_decay=self.arch_weight_decay,
                           sampling=self.sampling, augment=self.augment)

    def adaptation(self, **overrides) -> InnerConfig:
        base = InnerConfig(steps=self.adapt_steps, batch_size=self.adapt_batch_size,
                           lr=self.adapt_lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, arch_lr=self.adapt_arch_lr,
                           arch_weight_decay=self.arch_weight_decay, sampling=self.sampling,
                           augment=self.augment)
        return dataclasses.replace(base, **overrides)

    def temperature(self) -> TemperatureSchedule:
        """Temperature per meta-step."""
        return TemperatureSchedule(self.tau_start, self.tau_end, self.meta_steps,
                                   self.tau_schedule)

    @property
    def final_tau(self) -> float:
        return self.adapt_tau if self.adapt_tau is not None else self.temperature()(
            self.meta_steps)

    def meta_step_size(self, step: int) -> float:
        frac = step / max(1, self.meta_steps - 1)
        return self.meta_lr + (self.meta_lr_end - self.meta_lr) * min(frac, 1.0)
