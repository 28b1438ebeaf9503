"""Train MetaD2A's image feature extractor on Tiny-ImageNet (all 200 classes, 32 px).

    OMP_NUM_THREADS=1 python benchmarks/metad2a_extractor.py [--epochs 14] [--seed 0] \
        [--out src/metanas/assets/metad2a_extractor.safetensors] [--json docs/results]

Single-threaded on purpose (the budget is ~10 CPU minutes on a busy 2-core machine) and
deterministic in ``--seed``. Trains on the train split (200 images per class), reports top-1
accuracy of the trunk + linear head on the Tiny-ImageNet validation split (50 per class), writes
the float16 trunk as safetensors and ``metad2a_extractor.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from metanas.data import load_dataset
from metanas.methods.metad2a.extractor import (
    EXTRACTOR_ASSET,
    ExtractorConfig,
    save_extractor,
    train_extractor,
)
from metanas.paths import assets_dir, shared_datasets_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=None, help="Tiny-ImageNet zip (default: shared datasets)")
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--widths", default="32,64,128,256")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="first N training images (smoke)")
    ap.add_argument("--out", default=str(assets_dir() / EXTRACTOR_ASSET))
    ap.add_argument("--json", default="docs/results")
    args = ap.parse_args()
    torch.set_num_threads(1)
    source = args.source
    if source is None:
        shared = shared_datasets_dir()
        if shared is None:
            raise SystemExit("no ../shared/datasets: pass --source tiny-imagenet-200-64px.zip")
        source = str(shared / "tiny-imagenet-200-64px.zip")
    ds = load_dataset(source, progress=False)
    x, y = ds.x_train, ds.y_train
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    config = ExtractorConfig(widths=tuple(int(w) for w in args.widths.split(",")))
    model, report = train_extractor(
        x, y, x_val=ds.x_test, y_val=ds.y_test, config=config, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, progress=True,
    )
    report["source"] = ds.name
    report["widths"] = list(config.widths)
    save_extractor(model, args.out, info={k: v for k, v in report.items() if k != "history"})
    out = Path(args.json)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metad2a_extractor.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'epoch':>5} {'train loss':>10} {'train acc':>9}")
    for h in report["history"]:
        print(f"{h['epoch']:>5} {h['train_loss']:>10.3f} {h['train_acc']:>9.3f}")
    print(f"val acc {report.get('val_acc', float('nan')):.4f} (fp16 "
          f"{report.get('val_acc_fp16', float('nan')):.4f}); {report['params']} params, "
          f"{report['dim']}-d; {report['train_seconds']} s wall, "
          f"{report['train_cpu_seconds']} s CPU -> {args.out}")


if __name__ == "__main__":
    main()
