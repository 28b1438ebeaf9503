"""Meta-train BASE's meta-supernet (Algorithm 1), data-parallel over tasks.

    OMP_NUM_THREADS=1 python benchmarks/base_meta_train.py --nproc 2 --meta-steps 200 \
        --out src/metanas/assets/base_nb201.safetensors --log docs/results/base_meta_train.jsonl

Spawns ``--nproc`` processes (torch.distributed, gloo on CPU / NCCL with --device cuda) that
adapt their share of each meta-step's tasks; deltas are all-reduced. ``--state`` keeps a
resumable training state (``--resume`` continues it). Any BASEConfig field can be set with
``--set KEY=VALUE``. Prints a summary table and writes the run info as JSON next to the log.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from metanas.methods.base import BASEMethod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="checkpoint to write (.safetensors)")
    ap.add_argument("--plot-only", metavar="LOG", help="only plot an existing JSON-lines log")
    ap.add_argument("--source", default=None, help="task source (default: Tiny-ImageNet zip)")
    ap.add_argument("--nproc", type=int, default=1)
    ap.add_argument("--meta-steps", type=int, default=None)
    ap.add_argument("--state", default=None, help="resumable training state file")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--log", default=None, help="JSON-lines log of every meta-step")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="BASEConfig field, repeatable")
    args = ap.parse_args(argv)
    if args.plot_only:
        plot_log(Path(args.plot_only))
        return 0
    if not args.out:
        ap.error("--out is required")
    options: dict = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    if args.meta_steps is not None:
        options["meta_steps"] = args.meta_steps
    start = time.perf_counter()
    method = BASEMethod.meta_train(None, progress=sys.stderr.isatty(), source=args.source,
                                   nproc=args.nproc, state=args.state, resume=args.resume,
                                   log=args.log, device=args.device, threads=args.threads,
                                   **options)
    wall = time.perf_counter() - start
    method.info.update({
        "command": " ".join(["python", "benchmarks/base_meta_train.py", *(argv or sys.argv[1:])]),
        "wall_seconds": round(wall, 1),
        "hardware": f"{platform.machine()} {platform.processor() or ''} "
                    f"{torch.get_num_threads()} torch threads/process, nproc {args.nproc}".strip(),
        "torch": torch.__version__,
    })
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    method.save(args.out)
    summary = {"checkpoint": args.out, "bytes": Path(args.out).stat().st_size,
               "config": method.config.to_dict(), **method.info}
    if args.log:
        Path(args.log).with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
        plot_log(Path(args.log))
    for k in ("checkpoint", "bytes", "meta_step", "tasks_seen", "meta_loss", "seconds",
              "wall_seconds", "world_size", "source"):
        print(f"{k:>12}: {summary[k]}")
    return 0


def plot_log(log: Path) -> None:
    """Meta-loss and the mean architecture distribution (per op, averaged over edges) over the
    meta-steps, next to the log as .png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from metanas.spaces.nb201 import OPS

    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    steps = np.array([r["step"] for r in rows])
    loss = np.array([r["loss"] for r in rows])
    k = max(1, len(rows) // 20)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(steps, loss, alpha=0.3, label="per step")
    a.plot(steps[k - 1:], smooth, label=f"mean of {k}")
    a.set_xlabel("meta-step")
    a.set_ylabel("mean inner-loop training loss")
    a.legend()
    a.grid(alpha=0.3)
    table = next(iter(rows[0]["probs"]))
    probs = np.array([r["probs"][table] for r in rows])  # (steps, edges, ops)
    if probs.shape[-1] == len(OPS):
        for j, op in enumerate(OPS):
            b.plot(steps, probs[:, :, j].mean(1), label=op)
    b.set_xlabel("meta-step")
    b.set_ylabel(f"mean probability over edges ({table})")
    b.legend(fontsize=8)
    b.grid(alpha=0.3)
    fig.tight_layout()
    out = log.with_suffix(".png")
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    raise SystemExit(main())
