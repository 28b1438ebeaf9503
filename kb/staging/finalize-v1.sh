#!/bin/bash
# After kb/staging/build-v1.sh has finished: ship KB v1 and re-train everything that learns from
# it. Each step is a documented command; the bench step resumes (finished cells are skipped).
# Usage: kb/staging/finalize-v1.sh [pack|analyse|train|validate|bench|all]
set -euo pipefail
cd "$(dirname "$0")/../.." && . .venv/bin/activate
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
STEP=${1:-all}
A=src/metanas/assets
D=../shared/datasets

if [[ $STEP == pack || $STEP == all ]]; then
  # the build must be complete: 5 dense tasks x >= 300 cells, 300 tasks x >= 30 cells
  python - <<'EOF'
import sqlite3
c = sqlite3.connect("file:runs/kb-v1.db?mode=ro", uri=True)
per_task = [n for (n,) in c.execute(
    "SELECT COUNT(DISTINCT arch_id) FROM evaluations GROUP BY task_id")]
dense, ok = sum(n >= 300 for n in per_task), sum(n >= 30 for n in per_task)
print(f"tasks with >= 30 cells: {ok}, with >= 300: {dense}")
assert ok >= 300 and dense >= 5, "KB v1 is not complete: run kb/staging/build-v1.sh first"
EOF
  python - <<'EOF'
from pathlib import Path
from metanas.kb import pack_kb
entry = pack_kb(Path("runs/kb-v1.db"), "tinyimagenet-v1", make_default=True, description=(
    "300 Tiny-ImageNet tasks (295 x 30 cells, 5 dense x 310), cpu-proxy[epochs=12]; "
    "docs/knowledge_base.md"))
print(entry)
EOF
fi

if [[ $STEP == analyse || $STEP == all ]]; then
  python benchmarks/kb_analysis.py --kb tinyimagenet-v1 --name v1
fi

if [[ $STEP == train || $STEP == all ]]; then
  # two cores: MetaD2A (the longest) beside value-net then the transfer methods (whose Fisher
  # embeddings of the 300 tasks were cached in ~/.cache/metanas/fisher in session 3; without
  # the cache meta-train computes them, ~25 min)
  ( time metanas meta-train --method value-net --kb tinyimagenet-v1 --out $A/value_net.safetensors
    time metanas meta-train --method fisher-nearest --kb tinyimagenet-v1 --out $A/transfer.safetensors
  ) > runs/finalize-train-a.log 2>&1 &
  ( time metanas meta-train --method metad2a --kb tinyimagenet-v1 --out $A/metad2a.safetensors
  ) > runs/finalize-train-b.log 2>&1
  wait
  tail -n 4 runs/finalize-train-a.log runs/finalize-train-b.log
fi

if [[ $STEP == validate || $STEP == all ]]; then
  python benchmarks/metad2a_validation.py --kb tinyimagenet-v1 --folds 3 \
    --name metad2a_validation_v1 > runs/finalize-validate-a.log 2>&1 &
  python benchmarks/fisher_transfer.py --kb tinyimagenet-v1 > runs/finalize-validate-b.log 2>&1
  wait
  tail -n 30 runs/finalize-validate-a.log runs/finalize-validate-b.log
fi

if [[ $STEP == bench || $STEP == all ]]; then
  # the KB-independent methods are already in runs/bench-v1 (kb/staging/bench-v1-cells.tar.xz);
  # two processes (Omniglot is half the work), then one combining run that writes the tables
  [[ -d runs/bench-v1/cells ]] || tar -C runs -xJf kb/staging/bench-v1-cells.tar.xz  # all 88 cells
  M=value-net,metad2a,fisher-nearest,nearest-best,global-prior,base,base-prior,random,rea,darts,gdas
  ARGS="--methods $M --budget 60 --seeds 2 --recipe cpu-proxy --max-train-per-class 100 --out runs/bench-v1"
  metanas bench --datasets "$D/cifar10-32px.zip,$D/fashion-mnist.npz,$D/mnist.npz" $ARGS \
    > runs/finalize-bench-a.log 2>&1 &
  metanas bench --datasets "$D/omniglot-28px.npz[class_split=evaluation]" $ARGS \
    > runs/finalize-bench-b.log 2>&1
  wait
  DS="$D/cifar10-32px.zip,$D/fashion-mnist.npz,$D/mnist.npz,$D/omniglot-28px.npz[class_split=evaluation]"
  metanas bench --datasets "$DS" $ARGS
  mkdir -p docs/results/bench-v1 && cp runs/bench-v1/results.* runs/bench-v1/*.png docs/results/bench-v1/
fi
