"""BASE checkpoints: the supernet's meta state (weights, architecture logits, BatchNorm
statistics) in safetensors, with the supernet config, the BASE config and run info as JSON
metadata under the format tag ``metanas.base/1``.

An adapted supernet may also carry its task classifier (``classifier.*`` tensors), so the
weights adapted to a dataset can be saved and reloaded with the same reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from metanas.errors import CheckpointError, ConfigError, MetanasError, first_line
from metanas.methods.base.config import BASEConfig
from metanas.methods.checkpoints import check_shapes, meta_json, read_checkpoint, write_checkpoint
from metanas.supernet import Supernet, build_supernet
from metanas.version import __version__

CHECKPOINT_FORMAT = "metanas.base/1"


def save_checkpoint(path: str | Path, net: Supernet, config: BASEConfig, info: dict[str, Any],
                    *, with_classifier: bool = False) -> None:
    """Write atomically (temporary file, then rename)."""
    path = Path(path)
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.meta_state().items()}
    if with_classifier:
        for k, v in net.classifier.state_dict().items():
            tensors[f"classifier.{k}"] = v.detach().cpu().contiguous()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "metanas_version": __version__,
        "supernet": json.dumps(net.config),
        "config": json.dumps(config.to_dict()),
        "info": json.dumps(info, default=str),
    }
    write_checkpoint(path, tensors, meta)


def load_checkpoint(path: str | Path,
                    device: str | torch.device = "cpu") -> tuple[Supernet, BASEConfig, dict]:
    """(supernet, config, info); CheckpointError for anything that is not a BASE checkpoint."""
    path = Path(path)
    tensors, meta = read_checkpoint(path, CHECKPOINT_FORMAT, "base")
    info = meta_json(path, meta, "info", "base", default={})
    supernet = meta_json(path, meta, "supernet", "base")
    try:
        config = BASEConfig.from_options(meta_json(path, meta, "config", "base"))
    except (TypeError, ValueError, MetanasError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: incompatible base checkpoint ({first_line(exc)})"
                              ) from None
    check_shapes(path, "base supernet", lambda: build_supernet(supernet), tensors, "net.",
                 state=lambda m: m.meta_state())
    net = build_supernet(supernet)
    net.load_meta_state({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    if "classifier.weight" in tensors:
        weight, bias = tensors["classifier.weight"], tensors.get("classifier.bias")
        if (weight.ndim != 2 or bias is None or weight.shape[1] != net.c_out
                or tuple(bias.shape) != (weight.shape[0],)):
            raise CheckpointError(f"{path}: classifier does not fit the supernet")
        net.reset_classifier(weight.shape[0])
        net.classifier.load_state_dict({"weight": weight, "bias": bias})
    return net.to(device), config, info


def check_resumable(saved: BASEConfig, config: BASEConfig) -> None:
    """A run resumes only with the configuration it was started with."""
    a, b = saved.to_dict(), config.to_dict()
    diff = sorted(k for k in a if a[k] != b.get(k))
    if diff:
        raise ConfigError("cannot resume: the state was saved with a different configuration ("
                          + ", ".join(f"{k}: saved {a[k]!r}, now {b[k]!r}" for k in diff) + ")")
