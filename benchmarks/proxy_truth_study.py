"""Which CPU recipe ranks cells like 200-epoch ImageNet16-120 training, per CPU-second?

Cells are drawn stratified over the NB201 ImageNet16-120 table's accuracy range (equal numbers
per accuracy decile, seeded), trained on one Tiny-ImageNet task at 16 px (the table's stand-in)
with each recipe x images-per-class setting of ``--grid``, and stored in a knowledge base
(``--kb``), so an interrupted run resumes where it stopped (finished trainings are skipped).
Then ``benchmarks/proxy_vs_truth.py --kb KB`` judges every setting against the table.

    python benchmarks/proxy_truth_study.py --kb kb/staging/proxy-truth.db --cells 60
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time

import numpy as np

from metanas.data import load_dataset
from metanas.kb import KnowledgeBase
from metanas.paths import shared_datasets_dir
from metanas.spaces.nb201 import NB201Arch
from metanas.tasks import make_task
from metanas.training import get_recipe, train_architecture

#: (recipe, images per class, seeds): C 8-16, epochs 12-50, 100-500 images per class.
DEFAULT_GRID = (
    ("cpu-proxy[epochs=12,resolution=16]", 100, (0, 1)),
    ("cpu-proxy[C=16,epochs=12,resolution=16]", 100, (0,)),
    ("cpu-proxy[epochs=50,resolution=16]", 100, (0,)),
    ("cpu-proxy[epochs=12,resolution=16]", 500, (0,)),
    ("cpu-proxy[epochs=25,resolution=16]", 250, (0,)),
)


def stratified_cells(truth: dict[str, float], n: int, seed: int) -> list[str]:
    """``n`` connected, functionally distinct cells, equally many per accuracy decile."""
    rng = np.random.default_rng(seed)
    seen, cells = set(), []
    for a in sorted(truth):
        arch = NB201Arch.from_string(a)
        if arch.is_connected and arch.canonical_form not in seen:
            seen.add(arch.canonical_form)
            cells.append(a)
    acc = np.array([truth[a] for a in cells])
    edges = np.quantile(acc, np.linspace(0, 1, 11))
    chosen = []
    for d in range(10):
        pool = [c for c, v in zip(cells, acc, strict=True) if edges[d] <= v <= edges[d + 1]]
        chosen += list(rng.choice(pool, size=n // 10, replace=False))
    return sorted(chosen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kb", default="kb/staging/proxy-truth.db")
    ap.add_argument("--cells", type=int, default=60)
    ap.add_argument("--n-way", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="train at most this many now")
    args = ap.parse_args()
    shared = shared_datasets_dir()
    with (shared / "knowledge" / "nb201-imagenet16-120.csv").open(newline="") as fh:
        truth = {r["arch"]: float(r["test_acc"]) for r in csv.DictReader(fh)}
    cells = stratified_cells(truth, args.cells, args.seed)
    data = load_dataset(shared / "tiny-imagenet-200-64px.zip")
    rng = np.random.default_rng(args.seed)
    classes = tuple(int(c) for c in np.sort(rng.choice(data.num_classes, args.n_way,
                                                       replace=False)))
    jobs = [(r, ipc, s, a) for r, ipc, seeds in DEFAULT_GRID for s in seeds for a in cells]
    done = trained = 0
    start = time.perf_counter()
    with KnowledgeBase(args.kb) as kb:
        task_ids = {}
        for n, (recipe_name, ipc, seed, arch) in enumerate(jobs, start=1):
            recipe = get_recipe(recipe_name)
            if ipc not in task_ids:
                task = make_task(data, classes=classes, resolution=16, max_train_per_class=ipc,
                                 seed=args.seed)
                key = hashlib.sha256(json.dumps(["proxy-truth", classes, ipc, args.seed])
                                     .encode()).hexdigest()
                task_ids[ipc] = (key, kb.add_task(
                    key, name=f"tiny-imagenet-{args.n_way}way-16px-{ipc}ipc",
                    source="tiny-imagenet-200-64px", classes=classes, resolution=16,
                    channels=task.channels, num_classes=task.num_classes,
                    sizes={"train": len(task.y_train), "val": len(task.y_val),
                           "test": len(task.y_test)}, seed=args.seed,
                    spec={"kind": "proxy-truth-study", "images_per_class": ipc}), task)
            key, task_id, task = task_ids[ipc]
            aid = kb.add_architecture(arch, canonical=NB201Arch.from_string(arch)
                                      .canonical_hash())
            if kb.has_evaluation(key, arch, recipe.hash, seed):
                done += 1
                continue
            if args.limit is not None and trained >= args.limit:
                break
            res = train_architecture(arch, task, recipe, seed=seed)
            kb.add_evaluation(task_id, aid, recipe=recipe.name, recipe_hash=recipe.hash,
                              recipe_config=recipe.config(), seed=seed,
                              metrics=res.metrics(), seconds=res.seconds, device=res.device)
            trained += 1
            if trained % 10 == 0 or n == len(jobs):
                print(f"proxy-truth study: {n}/{len(jobs)} ({trained} trained now, {done} "
                      f"already done), {time.perf_counter() - start:.0f} s", flush=True)
    print(f"done: {done + trained}/{len(jobs)} evaluations in {args.kb}")


if __name__ == "__main__":
    main()
