"""BASE fast adaptation (the paper's Figure 4): accuracy vs adaptation steps on unseen datasets.

    OMP_NUM_THREADS=1 python benchmarks/base_adaptation.py            # CIFAR-10, Fashion-MNIST

For each dataset (a task of all its classes at the nearest head resolution, 400 train / 100
val images per class, 100 test images per class) it adapts, with the same inner loop, budget
and seed:

* ``meta``: the shipped meta-supernet (weights and logits adapted jointly),
* ``scratch``: the same supernet freshly initialised (no meta-training),
* ``frozen``: the meta-supernet with its architecture logits frozen (ablation),
* with ``--baselines``: first-order DARTS and GDAS from scratch (bilevel, same steps).

Accuracy is the supernet's test accuracy with expected op weights (BatchNorm statistics
re-estimated on training images) every ``--every`` steps. Also times the default search
(adaptation + derivation) per dataset. Writes docs/results/base_adaptation.json and .png.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from metanas.data import load_dataset
from metanas.methods.base import BASEMethod
from metanas.methods.gradient_nas import DARTSSearch, GDASSearch
from metanas.methods.registry import default_checkpoint
from metanas.paths import shared_datasets_dir
from metanas.spaces.nb201 import NB201Arch
from metanas.tasks import TaskSpec, make_task

DATASETS = {"cifar10": "cifar10-32px.zip", "fashion-mnist": "fashion-mnist.npz"}
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def run_setting(method: BASEMethod, task, *, steps: int, every: int, seed: int,
                **adapt) -> dict:
    ad = method.adapt(task, seed=seed, steps=steps, curve_every=every, curve_split="test",
                      **adapt)
    arch = NB201Arch.from_probabilities(ad.probabilities["cell"])
    return {"curve": ad.curve, "seconds": round(ad.stats.seconds, 2),
            "final_loss": float(np.mean(ad.stats.losses[-10:])) if ad.stats.losses else None,
            "derived": arch.to_string(),
            "max_prob": float(ad.probabilities["cell"].max(1).mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(default_checkpoint("base")))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--baselines", action="store_true",
                    help="also DARTS and GDAS (curves and default searches)")
    ap.add_argument("--no-curves", action="store_true", help="only the timed default searches")
    ap.add_argument("--out", default=str(RESULTS / "base_adaptation.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    shared = shared_datasets_dir()
    if shared is None:
        raise SystemExit("needs ../shared/datasets (CIFAR-10 and Fashion-MNIST)")
    meta = BASEMethod.load(args.checkpoint)
    scratch = BASEMethod.untrained(meta.config, seed=0)
    settings = {
        "meta": (meta, {}),
        "scratch": (scratch, {}),
        "frozen": (meta, {"freeze_arch": True}),
    }
    if args.baselines:
        gdas_tau = GDASSearch().temperature(args.steps)
        settings["darts"] = (scratch, {"bilevel": True, "sampling": "softmax", "tau": 1.0})
        settings["gdas"] = (scratch, {"bilevel": True, "sampling": "hard", "tau": gdas_tau})
    report: dict = {"checkpoint": Path(args.checkpoint).name, "meta_info": meta.info,
                    "steps": args.steps, "every": args.every, "seeds": args.seeds,
                    "hardware": f"{platform.machine()}, 1 torch thread, busy 2-core CPU",
                    "datasets": {}}
    start = time.perf_counter()
    for name in args.datasets.split(","):
        data = load_dataset(shared / DATASETS[name], progress=False)
        res = meta.task_resolution(data)
        entry: dict = {"resolution": res, "settings": {}}
        for seed in range(0 if args.no_curves else args.seeds):
            spec = TaskSpec(classes=tuple(range(data.num_classes)), resolution=res,
                            max_train_per_class=500, max_test_per_class=100, seed=seed)
            task = make_task(data, spec)
            entry["task"] = task.describe()
            for label, (method, adapt) in settings.items():
                out = run_setting(method, task, steps=args.steps, every=args.every, seed=seed,
                                  **adapt)
                entry["settings"].setdefault(label, []).append(out)
                accs = [round(c["accuracy"], 3) for c in out["curve"]]
                print(f"{name:>13} seed {seed} {label:>8}: {accs} ({out['seconds']} s)",
                      flush=True)
        # the default search (adaptation + derivation), timed; baselines on the same budget
        searchers = {"base": meta}
        if args.baselines:
            searchers.update({"darts": DARTSSearch(), "gdas": GDASSearch()})
        entry["searches"] = {}
        for label, searcher in searchers.items():
            result = searcher.search(data, top=5)
            entry["searches"][label] = {
                "search_seconds": round(result.search_seconds, 2),
                "timings": {k: round(v, 3) for k, v in result.timings.items()},
                "architecture": result.architecture,
                "adaptation": result.details["adaptation"]}
            print(f"{name:>13} default search {label:>5}: {result.search_seconds:.1f} s, "
                  f"supernet val acc {result.details['adaptation'][0]['supernet_val_acc']:.3f}"
                  f", pick {result.architecture}", flush=True)
        entry["default_search"] = entry["searches"]["base"]
        report["datasets"][name] = entry
    report["total_seconds"] = round(time.perf_counter() - start, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    if not args.no_curves:
        plot(report, Path(args.out).with_suffix(".png"))
    return 0


def mean_curve(runs: list[dict]) -> tuple[list[int], list[float]]:
    steps = [c["step"] for c in runs[0]["curve"]]
    accs = np.mean([[c["accuracy"] for c in r["curve"]] for r in runs], axis=0)
    return steps, accs.tolist()


def print_table(report: dict) -> None:
    for name, entry in report["datasets"].items():
        for label, d in entry["searches"].items():
            print(f"{name} default search {label}: {d['search_seconds']} s, supernet val acc "
                  f"{d['adaptation'][0]['supernet_val_acc']:.3f}, pick {d['architecture']}")
        if not entry["settings"]:
            continue
        steps, _ = mean_curve(next(iter(entry["settings"].values())))
        print(f"\n{name} (test accuracy of the adapted supernet, mean of {report['seeds']} "
              f"seed(s))")
        print("| setting | " + " | ".join(f"{s}" for s in steps) + " |")
        print("|---|" + "---|" * len(steps))
        for label, runs in entry["settings"].items():
            _, accs = mean_curve(runs)
            print(f"| {label} | " + " | ".join(f"{a:.3f}" for a in accs) + " |")


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["datasets"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for label, runs in report["datasets"][name]["settings"].items():
            steps, accs = mean_curve(runs)
            ax.plot(steps, accs, marker="o", ms=3, label=label)
        ax.set_title(f"{name}: supernet adaptation")
        ax.set_xlabel("adaptation steps (batch 64)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
