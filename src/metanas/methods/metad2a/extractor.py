"""Image features for dataset encoding: a small residual CNN trained on Tiny-ImageNet, or yours.

MetaD2A embeds each image with an ImageNet-pretrained ResNet18 (512-d). Nothing can be
downloaded here, so metanas ships its own extractor: :class:`SmallResNet`, trained on all 200
Tiny-ImageNet classes at 32 px (``benchmarks/metad2a_extractor.py`` reproduces it from a seed)
and stored as safetensors. Any ``nn.Module`` or callable that maps a float image batch
``(N, 3, S, S)`` in ``[0, 1]`` to ``(N, D)`` features can replace it (e.g. a pretrained
torchvision or timm model wrapped with its own normalization); :class:`FeatureExtractor`
converts channels, resizes and batches for it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metanas.errors import CheckpointError, ConfigError, first_line
from metanas.methods.checkpoints import check_shapes, meta_json, read_checkpoint, write_checkpoint
from metanas.paths import assets_dir
from metanas.version import __version__

EXTRACTOR_FORMAT = "metanas.metad2a-extractor/1"
EXTRACTOR_ASSET = "metad2a_extractor.safetensors"


# ----- images --------------------------------------------------------------------------------
def to_float_images(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NHWC arrays (as datasets store them) -> float32 NCHW in [0, 1]."""
    if isinstance(x, np.ndarray):
        if not x.flags.writeable:  # datasets hold read-only views; torch wants writeable
            x = x.copy()
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        t = x
    if t.dtype == torch.uint8:
        return t.permute(0, 3, 1, 2).float().div_(255.0)
    return t.float()


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Square resize with antialiasing (the same interpolation tasks use)."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)


def match_channels(x: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """Grayscale is repeated; other channel counts are averaged to gray and repeated."""
    c = x.shape[1]
    if c == channels:
        return x
    gray = x if c == 1 else x.mean(dim=1, keepdim=True)
    return gray.expand(-1, channels, -1, -1)


# ----- the built-in extractor ----------------------------------------------------------------
@dataclass
class ExtractorConfig:
    widths: tuple[int, ...] = (32, 64, 128, 256)
    stem_stride: int = 2
    input_size: int = 32
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        if not self.widths or min(self.widths) < 1:
            raise ConfigError(f"extractor widths must be positive, got {self.widths}")
        if self.input_size < 8:
            raise ConfigError(f"extractor input_size must be >= 8, got {self.input_size}")


class _Block(nn.Module):
    """Basic residual block (two 3x3 conv-BN, projection shortcut when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class SmallResNet(nn.Module):
    """A ResNet-10-like feature extractor sized for one CPU thread.

    Stem 3x3 conv (stride 2: 32 px -> 16 px, which makes it ~4x cheaper than stride 1 at a
    small accuracy cost), one residual block per width (stride 2 after the first), global
    average pooling. Input: float images in [0, 1] at ``input_size``; normalization is inside.
    """

    def __init__(self, config: ExtractorConfig | None = None) -> None:
        super().__init__()
        self.config = config or ExtractorConfig()
        c = self.config
        self.register_buffer("mean", torch.tensor(c.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(c.std).view(1, 3, 1, 1))
        self.stem = nn.Sequential(nn.Conv2d(3, c.widths[0], 3, c.stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(c.widths[0]), nn.ReLU())
        blocks, cin = [], c.widths[0]
        for i, w in enumerate(c.widths):
            blocks.append(_Block(cin, w, 1 if i == 0 else 2))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.blocks(self.stem(x)).mean(dim=(2, 3))


class FeatureExtractor:
    """Any image->features model behind one interface: channels, size, batching, no grad.

    ``fn`` is an ``nn.Module`` or a callable mapping float ``(N, channels, input_size,
    input_size)`` images in ``[0, 1]`` to ``(N, D)`` features. ``dim`` is probed with a dummy
    batch when not given. ``name`` identifies the extractor in checkpoints: a predictor is only
    valid with the features it was meta-trained on.
    """

    def __init__(self, fn: nn.Module | Callable[[torch.Tensor], torch.Tensor], *,
                 input_size: int = 32, channels: int = 3, dim: int | None = None,
                 batch_size: int = 256, name: str = "custom") -> None:
        if not callable(fn):
            raise ConfigError(f"extractor must be an nn.Module or a callable, got "
                              f"{type(fn).__name__}")
        self.fn = fn
        self.input_size = int(input_size)
        self.channels = int(channels)
        self.batch_size = int(batch_size)
        self.name = name
        if isinstance(fn, nn.Module):
            fn.eval()
        self.dim = int(dim) if dim is not None else int(self(torch.zeros(2, 3, 8, 8)).shape[1])

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features of float NCHW images in [0, 1] (any channel count and size)."""
        out = []
        for b in range(0, len(images), self.batch_size):
            x = match_channels(images[b:b + self.batch_size].float(), self.channels)
            feats = self.fn(resize(x, self.input_size))
            feats = torch.as_tensor(feats, dtype=torch.float32)
            if feats.ndim != 2 or len(feats) != len(x):
                raise ConfigError(f"extractor {self.name!r} must return (N, D) features, got "
                                  f"shape {tuple(feats.shape)} for {len(x)} images")
            out.append(feats)
        if not out:
            return torch.zeros(0, getattr(self, "dim", 0))
        return torch.cat(out)

    @property
    def module(self) -> SmallResNet | None:
        return self.fn if isinstance(self.fn, SmallResNet) else None


def builtin_extractor(model: SmallResNet) -> FeatureExtractor:
    """Wrap a :class:`SmallResNet` with its weights rounded to float16, exactly as checkpoints
    store them, so a model behaves the same before and after a save/load round trip."""
    rounded = extractor_from_tensors(extractor_tensors(model), model.config)
    return FeatureExtractor(rounded, input_size=model.config.input_size, dim=model.dim,
                            name="metanas-smallresnet")


def as_extractor(extractor: Any) -> FeatureExtractor:
    """None -> the shipped extractor; a FeatureExtractor as is; a module/callable wrapped."""
    if extractor is None:
        return builtin_extractor(load_extractor())
    if isinstance(extractor, FeatureExtractor):
        return extractor
    if isinstance(extractor, SmallResNet):
        return builtin_extractor(extractor)
    if isinstance(extractor, str | Path):
        return builtin_extractor(load_extractor(extractor))
    return FeatureExtractor(extractor)


# ----- persistence ---------------------------------------------------------------------------
def extractor_tensors(model: SmallResNet, prefix: str = "") -> dict[str, torch.Tensor]:
    """State as float16 (half the file; the rounded weights *are* the extractor everywhere)."""
    return {prefix + k: (v.half() if v.is_floating_point() else v).contiguous()
            for k, v in model.state_dict().items()}


def extractor_from_tensors(tensors: dict[str, torch.Tensor], config: ExtractorConfig,
                           prefix: str = "", path: Path | None = None) -> SmallResNet:
    """The extractor of ``config`` holding ``tensors``; with ``path`` (a checkpoint being
    read) their names and shapes are checked against the config before it is built."""
    if path is not None:
        check_shapes(path, "MetaD2A extractor", lambda: SmallResNet(config), tensors, prefix)
    model = SmallResNet(config)
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    ref = model.state_dict()
    state = {k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()}
    model.load_state_dict(state)
    return model.eval()


def save_extractor(model: SmallResNet, path: str | Path, info: dict | None = None) -> None:
    meta = {"format": EXTRACTOR_FORMAT, "metanas_version": __version__,
            "config": json.dumps(asdict(model.config)), "info": json.dumps(info or {})}
    write_checkpoint(path, extractor_tensors(model), meta)


def load_extractor(path: str | Path | None = None) -> SmallResNet:
    """The shipped extractor (default) or one written by :func:`save_extractor`."""
    path = Path(path) if path is not None else assets_dir() / EXTRACTOR_ASSET
    tensors, meta = read_checkpoint(path, EXTRACTOR_FORMAT, "MetaD2A feature extractor")
    what = "MetaD2A extractor"
    info = meta_json(path, meta, "info", what, default={})
    try:
        config = ExtractorConfig(**meta_json(path, meta, "config", what))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: incompatible {what} ({first_line(exc)})") from None
    model = extractor_from_tensors(tensors, config, path=path)
    model.info = info
    return model


# ----- training ------------------------------------------------------------------------------
def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop (reflect padding) and horizontal flip, per image."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :]
    out = padded.gather(2, rows.expand(n, c, h, w + 2 * pad)).gather(3, cols.expand(n, c, h, w))
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def train_extractor(
    x_train: np.ndarray, y_train: np.ndarray, *, x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None, config: ExtractorConfig | None = None, epochs: int = 8,
    batch_size: int = 128, lr: float = 0.1, weight_decay: float = 5e-4,
    label_smoothing: float = 0.1, seed: int = 0, progress: bool = False,
) -> tuple[SmallResNet, dict[str, Any]]:
    """Train :class:`SmallResNet` + a linear classifier on uint8 NHWC images; keep the trunk.

    SGD (Nesterov 0.9), one-cycle-like schedule (linear warm-up for half an epoch, cosine
    decay), crop+flip augmentation, label smoothing. Images are resized once to the input size
    and kept as uint8; normalization statistics are the training images' per-channel ones.
    Deterministic in ``seed`` on the CPU.
    """
    from metanas.progress import Bars

    config = config or ExtractorConfig()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    size = config.input_size

    def prepare(x: np.ndarray) -> torch.Tensor:
        out = []
        for b in range(0, len(x), 2048):
            f = match_channels(to_float_images(x[b:b + 2048]), 3)
            out.append(resize(f, size).mul_(255).round_().clamp_(0, 255).to(torch.uint8))
        return torch.cat(out)

    xt = prepare(x_train)
    yt = torch.tensor(np.asarray(y_train, dtype=np.int64))
    sample = xt[torch.randperm(len(xt), generator=gen)[:5000]].float() / 255
    config.mean = tuple(float(v) for v in sample.mean(dim=(0, 2, 3)))
    config.std = tuple(float(v) for v in sample.std(dim=(0, 2, 3)))
    model = SmallResNet(config)
    n_classes = int(yt.max()) + 1
    head = nn.Linear(model.dim, n_classes)
    params = list(model.parameters()) + list(head.parameters())
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=lr, momentum=0.9, nesterov=True)
    steps_per_epoch = math.ceil(len(xt) / batch_size)
    total = epochs * steps_per_epoch
    warm = max(1, steps_per_epoch // 2)

    def lr_at(step: int) -> float:
        if step < warm:
            return lr * (step + 1) / warm
        return 0.5 * lr * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    start = time.perf_counter()
    cpu0 = time.process_time()
    history = []
    step = 0
    with Bars(progress) as bars:
        bar = bars.add("train extractor", total)
        for epoch in range(epochs):
            model.train()
            head.train()
            order = torch.randperm(len(xt), generator=gen)
            correct = seen = 0
            loss_sum = 0.0
            for b in range(0, len(xt), batch_size):
                idx = order[b:b + batch_size]
                x = _augment(xt[idx].float() / 255, gen)
                y = yt[idx]
                for g in opt.param_groups:
                    g["lr"] = lr_at(step)
                logits = head(model(x))
                loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                loss_sum += loss.item() * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
                bars.advance(bar, status=f"epoch {epoch + 1} loss {loss_sum / seen:.3f}")
            history.append({"epoch": epoch + 1, "train_loss": loss_sum / seen,
                            "train_acc": correct / seen})
    model.eval()
    report: dict[str, Any] = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
        "label_smoothing": label_smoothing, "seed": seed, "n_train": int(len(xt)),
        "classes": n_classes, "train_seconds": round(time.perf_counter() - start, 1),
        "train_cpu_seconds": round(time.process_time() - cpu0, 1),
        "threads": torch.get_num_threads(), "history": history,
        "params": int(sum(p.numel() for p in model.parameters())), "dim": model.dim,
    }
    if x_val is not None and y_val is not None:
        report["val_acc"] = evaluate_classifier(model, head, prepare(x_val), np.asarray(y_val))
        # the shipped weights are float16: measure what users get
        half = extractor_from_tensors(extractor_tensors(model), config)
        report["val_acc_fp16"] = evaluate_classifier(half, head, prepare(x_val),
                                                     np.asarray(y_val))
    return model, report


@torch.no_grad()
def evaluate_classifier(model: SmallResNet, head: nn.Module, x: torch.Tensor,
                        y: np.ndarray) -> float:
    model.eval()
    head.eval()
    correct = 0
    for b in range(0, len(x), 512):
        logits = head(model(x[b:b + 512].float() / 255))
        correct += int((logits.argmax(1).numpy() == y[b:b + 512]).sum())
    return correct / len(y)
