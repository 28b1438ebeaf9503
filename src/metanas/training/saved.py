"""A trained network a user can take home: weights plus everything needed to use them.

``save_model`` writes safetensors (no pickle) with a JSON card: format version, architecture,
C, N, classes and their names, the input size and channels, the normalisation statistics of
the training split, the recipe, metrics and the metanas version. ``load_model`` refuses a
foreign, truncated or newer-format file with a one-line :class:`CheckpointError` and returns a
:class:`SavedModel` in eval mode whose :meth:`SavedModel.predict` takes raw images (uint8
arrays or image files) and applies exactly the preprocessing of training (scale to [0, 1],
antialiased bilinear resize to the task's side, per-channel standardisation, then the recipe's
input side).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metanas.errors import CheckpointError, DatasetError
from metanas.paths import atomic_write
from metanas.safefiles import open_safetensors, write_safetensors
from metanas.spaces.nb201 import NB201Network
from metanas.tasks import Task
from metanas.version import __version__

__all__ = ["MODEL_FORMAT", "ModelCard", "SavedModel", "export", "load_model", "save_model"]

MODEL_FORMAT = "metanas.nb201-model/2"
MAX_CLASSES = 100_000
MAX_SIDE = 1024


@dataclass(frozen=True)
class ModelCard:
    """What a saved model is and how its inputs were prepared."""

    arch: str
    C: int
    N: int
    in_channels: int
    num_classes: int
    class_names: tuple[str, ...]
    task_resolution: int
    input_resolution: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    recipe: str
    metrics: dict[str, Any]
    metanas_version: str = __version__
    training: dict[str, Any] = field(default_factory=dict)
    """How the weights were made, when known: the recipe's full config (C, N, epochs, batch
    size, augmentation, ...), the budget plan and the curve summary (``metanas fit``)."""
    stem_strides: int = 0
    """Stride-2 blocks before NB201's stem (a network cut out of a BASE supernet keeps its
    input head, ``--set inherit=true``); 0 for NB201's own stem, and then not written, so
    the files of plain networks stay as before."""

    def check(self, where: str) -> None:
        ints = (self.C, self.N, self.in_channels, self.num_classes, self.task_resolution,
                self.input_resolution)
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in ints):
            raise CheckpointError(f"{where}: model card has a non-positive size")
        if isinstance(self.stem_strides, bool) or not isinstance(self.stem_strides, int) \
                or not 0 <= self.stem_strides <= 10:
            raise CheckpointError(f"{where}: model card has an invalid stem_strides")
        if self.num_classes > MAX_CLASSES or max(self.task_resolution,
                                                 self.input_resolution) > MAX_SIDE:
            raise CheckpointError(f"{where}: model card declares sizes beyond the limits "
                                  f"({MAX_CLASSES} classes, {MAX_SIDE} px)")
        if len(self.class_names) != self.num_classes or len(self.mean) != self.in_channels \
                or len(self.std) != self.in_channels:
            raise CheckpointError(f"{where}: model card is inconsistent (class names, "
                                  "channels)")
        if not all(np.isfinite(self.mean)) or not all(s > 0 and np.isfinite(s)
                                                         for s in self.std):
            raise CheckpointError(f"{where}: model card has non-finite normalisation")


class SavedModel(nn.Module):
    """A trained NB201 network with its card; ``forward`` takes preprocessed tensors,
    :meth:`predict` raw images."""

    def __init__(self, net: NB201Network, card: ModelCard) -> None:
        super().__init__()
        self.net = net
        self.card = card
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def preprocess(self, images: np.ndarray | Sequence[str | os.PathLike]) -> torch.Tensor:
        """Raw images (uint8 ``(N, H, W)`` / ``(N, H, W, C)`` or image files) as the network's
        input, prepared as in training."""
        x = _as_uint8(images, self.card.in_channels)
        c = self.card
        t = torch.from_numpy(np.array(x, dtype=np.uint8)).permute(0, 3, 1, 2).float().div_(255.0)
        if t.shape[-2:] != (c.task_resolution, c.task_resolution):
            t = F.interpolate(t, size=(c.task_resolution, c.task_resolution), mode="bilinear",
                              antialias=True, align_corners=False)
        mean = torch.tensor(c.mean)[None, :, None, None]
        std = torch.tensor(c.std)[None, :, None, None]
        t = (t - mean) / std
        if c.input_resolution != c.task_resolution:
            t = F.interpolate(t, size=(c.input_resolution, c.input_resolution), mode="bilinear",
                              antialias=True)
        return t

    @torch.no_grad()
    def predict(self, images, top: int = 1, batch: int = 256) -> dict[str, Any]:
        """Top-``top`` class indices, names and probabilities per image."""
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise DatasetError(f"--top must be an integer >= 1, got {top!r}")
        top = min(top, self.card.num_classes)
        x = self.preprocess(images)
        probs = torch.cat([torch.softmax(self.net(x[i:i + batch]), 1)
                           for i in range(0, len(x), batch)])
        p, idx = probs.topk(top, dim=1)
        return {"classes": idx.numpy(), "probabilities": p.numpy(),
                "names": [[self.card.class_names[j] for j in row] for row in idx.tolist()]}


def _as_uint8(images, channels: int) -> np.ndarray:
    """(N, H, W, channels) uint8 from arrays or files; one-line errors for the rest."""
    if isinstance(images, np.ndarray):
        x = images
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4 or x.shape[0] == 0:
            raise DatasetError(f"images must be (N, H, W) or (N, H, W, C) arrays, got shape "
                               f"{images.shape}")
        if x.dtype != np.uint8:
            if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all() \
                    or x.min() < 0 or x.max() > 1:
                raise DatasetError("images must be uint8, or floats in [0, 1]")
            x = np.rint(x * 255).astype(np.uint8)
        if max(x.shape[1:3]) > 4 * MAX_SIDE:
            raise DatasetError(f"images of {x.shape[1]}x{x.shape[2]} px exceed {4 * MAX_SIDE}")
    else:
        from PIL import Image, UnidentifiedImageError

        mode = "L" if channels == 1 else "RGB"
        arrays = []
        for f in images:
            try:
                with Image.open(f) as im:
                    arrays.append(np.asarray(im.convert(mode)))
            except (OSError, UnidentifiedImageError) as exc:
                raise DatasetError(f"cannot read image {f}: {exc}") from None
        if not arrays:
            raise DatasetError("no images given")
        side = arrays[0].shape[:2]
        if any(a.shape[:2] != side for a in arrays):
            import PIL.Image as _im

            arrays = [np.asarray(_im.fromarray(a).resize(side[::-1], _im.BILINEAR))
                      for a in arrays]
        x = np.stack(arrays)
        if x.ndim == 3:
            x = x[..., None]
    if x.shape[-1] == 1 and channels == 3:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] == 3 and channels == 1:
        x = np.rint(x.astype(np.float32) @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[
            ..., None]
    if x.shape[-1] != channels:
        raise DatasetError(f"images have {x.shape[-1]} channels; the model takes {channels}")
    return x


def save_model(path: str | os.PathLike, net: NB201Network, task: Task, *, recipe: str,
               input_resolution: int, metrics: dict[str, Any],
               training: dict[str, Any] | None = None) -> ModelCard:
    """Write ``net`` trained on ``task`` as a self-contained model file (atomic);
    ``training``: see :attr:`ModelCard.training`."""
    cfg = net.config
    metrics = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
               for k, v in metrics.items()}
    card = ModelCard(
        arch=net.arch.to_string(), C=int(cfg["C"]), N=int(cfg["N"]),
        in_channels=int(cfg["in_channels"]), num_classes=int(cfg["num_classes"]),
        class_names=tuple(str(n) for n in task.class_names),
        task_resolution=int(task.resolution), input_resolution=int(input_resolution),
        mean=tuple(task.mean), std=tuple(task.std), recipe=recipe, metrics=dict(metrics),
        training=json.loads(json.dumps(training or {}, default=float)),
        stem_strides=int(cfg.get("stem_strides", 0)))
    card.check(str(path))
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    fields = asdict(card)
    if not fields["stem_strides"]:
        del fields["stem_strides"]
    meta = {"format": MODEL_FORMAT, "card": json.dumps(fields, allow_nan=False,
                                                       default=float)}
    write_safetensors(path, state, meta, "model")
    return card


def load_model(path: str | os.PathLike) -> SavedModel:
    """A saved model, checked (format and version, card, shapes, finite weights), in eval
    mode on the CPU."""
    path = Path(path)
    with open_safetensors(path, "metanas model") as (fh, meta):
        fmt = meta.get("format", "")
        if not fmt.startswith("metanas.nb201-model/"):
            raise CheckpointError(f"{path} is not a metanas model (format {fmt!r})")
        if fmt != MODEL_FORMAT:
            raise CheckpointError(f"{path} has format {fmt}; this metanas ({__version__}) "
                                  f"reads {MODEL_FORMAT}: upgrade metanas")
        raw = json.loads(meta["card"])
        raw["class_names"] = tuple(raw["class_names"])
        raw["mean"], raw["std"] = tuple(raw["mean"]), tuple(raw["std"])
        card = ModelCard(**raw)
        card.check(str(path))
        net = NB201Network(card.arch, C=card.C, N=card.N, in_channels=card.in_channels,
                           num_classes=card.num_classes, stem_strides=card.stem_strides)
        expected = net.state_dict()
        if set(fh.keys()) != set(expected):
            raise CheckpointError(f"{path}: its tensors do not match architecture "
                                  f"{card.arch} with C={card.C}, N={card.N}")
        state = {}
        for k in expected:
            t = fh.get_tensor(k)
            if t.shape != expected[k].shape:
                raise CheckpointError(f"{path}: tensor {k} has shape {tuple(t.shape)}, "
                                      f"expected {tuple(expected[k].shape)}")
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise CheckpointError(f"{path}: tensor {k} holds non-finite values")
            state[k] = t
    net.load_state_dict(state)
    return SavedModel(net, card)


def export(model: SavedModel, *, onnx_path: str | os.PathLike | None = None,
           torchscript_path: str | os.PathLike | None = None, seed: int = 0) -> dict[str, Any]:
    """Export the network for deployment and check the copy against PyTorch on a seeded batch.

    The exported graph takes the *preprocessed* input (``preprocess``: [0, 1] pixels resized
    and standardised, ``(n, channels, side, side)``, any ``n``); the card (normalisation, class
    names) goes into the ONNX file's metadata. ONNX uses torch's TorchScript-based exporter
    (the dynamo exporter needs onnxscript); it is checked with onnxruntime when installed, else
    with ``onnx.checker`` only. Returns, per format, the file and the largest absolute
    difference of its logits from PyTorch's.
    """
    import warnings

    c = model.card
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4, c.in_channels, c.input_resolution, c.input_resolution, generator=gen)
    with torch.no_grad():
        reference = model(x).numpy()
    report: dict[str, Any] = {"input": [None, c.in_channels, c.input_resolution,
                                        c.input_resolution]}
    if torchscript_path is not None:
        path = Path(torchscript_path)
        with torch.no_grad():
            traced = torch.jit.trace(model.net, x)
        _write(path, lambda tmp: traced.save(tmp))
        loaded = torch.jit.load(str(path))
        with torch.no_grad():
            diff = float(np.abs(loaded(x).numpy() - reference).max())
        report["torchscript"] = {"file": str(path), "max_abs_diff": diff}
    if onnx_path is not None:
        try:
            import onnx
        except ImportError:
            raise CheckpointError("ONNX export needs the onnx package: pip install "
                                  "'metanas[export]'") from None
        path = Path(onnx_path)

        def write(tmp: str) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model.net, (x,), tmp, input_names=["images"],
                                  output_names=["logits"], dynamo=False,
                                  dynamic_axes={"images": {0: "n"}, "logits": {0: "n"}})
            proto = onnx.load(tmp)
            for key, value in (("metanas.card", json.dumps(asdict(c), default=float)),
                               ("metanas.preprocess", "x/255 -> bilinear antialiased resize "
                                "to task_resolution -> (x - mean) / std -> resize to "
                                "input_resolution")):
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value
            onnx.checker.check_model(proto)
            onnx.save(proto, tmp)

        _write(path, write)
        entry: dict[str, Any] = {"file": str(path), "checked_with": "onnx.checker"}
        try:
            import onnxruntime as ort
        except ImportError:
            ort = None
        if ort is not None:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            out = session.run(None, {"images": x.numpy()})[0]
            entry.update(checked_with="onnxruntime",
                         max_abs_diff=float(np.abs(out - reference).max()))
        report["onnx"] = entry
    return report


def _write(path: Path, write) -> None:
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise CheckpointError(f"cannot write {path}: {exc.strerror or exc}") from None
