"""BASE few-shot variant on Omniglot: search a cell with MAML through the supernet, train it with
MAML, compare with the 4-layer conv MAML baseline on the same test episodes.

    OMP_NUM_THREADS=1 python benchmarks/base_fewshot.py            # 5-way 1-shot and 5-shot

Meta-training episodes come from Omniglot's background classes, test episodes (the same for
every model) from its evaluation classes. Reports mean query accuracy and the 95% interval over
``--episodes`` test episodes; writes docs/results/base_fewshot.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from metanas.methods.base.fewshot import (
    Conv4,
    MAMLConfig,
    cell_network,
    load_omniglot,
    maml_evaluate,
    maml_train,
    search_cell,
)
from metanas.paths import shared_datasets_dir

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", default="1,5")
    ap.add_argument("--search-iterations", type=int, default=60)
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--second-order", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "base_fewshot.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    shared = shared_datasets_dir()
    if shared is None:
        raise SystemExit("needs ../shared/datasets/omniglot-28px.npz")
    src = load_omniglot(shared / "omniglot-28px.npz")
    report: dict = {"settings": vars(args), "results": {}}
    start = time.perf_counter()
    for shot in (int(s) for s in args.shots.split(",")):
        base = MAMLConfig(k_shot=shot, first_order=not args.second_order)
        t0 = time.perf_counter()
        arch, _, search_log = search_cell(
            src["background"], dataclasses.replace(base, iterations=args.search_iterations))
        t_search = time.perf_counter() - t0
        entry: dict = {"derived_cell": arch.to_string(), "search_seconds": round(t_search, 1),
                       "search_final": search_log[-1], "models": {}}
        print(f"{shot}-shot: derived {arch.to_string()} ({t_search:.0f} s)", flush=True)
        cfg = dataclasses.replace(base, iterations=args.iterations)
        for name, model in (("base-cell", cell_network(arch, n_way=cfg.n_way)),
                            ("conv4", Conv4(num_classes=cfg.n_way))):
            t0 = time.perf_counter()
            log = maml_train(model, src["background"], cfg)
            t_train = time.perf_counter() - t0
            res = maml_evaluate(model, src["evaluation"], cfg, episodes=args.episodes)
            params = sum(p.numel() for n, p in model.named_parameters()
                         if not n.startswith("classifier."))
            entry["models"][name] = {
                "mean": res["mean"], "ci95": res["ci95"], "episodes": res["episodes"],
                "train_seconds": round(t_train, 1), "params_without_head": params,
                "final_train_query_acc": log[-1]["accuracy"],
            }
            print(f"  {name:>9}: {100 * res['mean']:.2f} +- {100 * res['ci95']:.2f} % "
                  f"({res['episodes']} episodes, train {t_train:.0f} s)", flush=True)
        entry["config"] = dataclasses.asdict(cfg)
        report["results"][f"5way-{shot}shot"] = entry
    report["total_seconds"] = round(time.perf_counter() - start, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print("\n| setting | BASE cell (MAML) | conv4 (MAML) | derived cell |")
    print("|---|---|---|---|")
    for key, e in report["results"].items():
        m = e["models"]
        print(f"| {key} | {100 * m['base-cell']['mean']:.2f} +- "
              f"{100 * m['base-cell']['ci95']:.2f} | {100 * m['conv4']['mean']:.2f} +- "
              f"{100 * m['conv4']['ci95']:.2f} | `{e['derived_cell']}` |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
