#!/usr/bin/env bash
# Omniglot background alphabets as knowledge-base tasks: many-way (20-200 classes), about 13
# labelled training images per class, 28 px, the cpu-proxy recipe. Why: no task of the
# combined knowledge base is of this kind, and on Omniglot's evaluation split the value
# network's picks are far behind random search (docs/bench.md, seventh run; docs/roadmap.md).
# A pilot (3 tasks x 10 cells x 2 seeds, 100-way) agreed between seeds at Kendall 0.45-0.49
# and between tasks at 0.56-0.60 (KB v1's Tiny-ImageNet proxy: 0.083 between seeds).
# Resumable: re-running trains only what is missing. Snapshot at a session's end:
#   xz -T1 -9 -c runs/omniglot-bg-v1.db > kb/staging/omniglot-bg-v1.db.xz && \
#   (cd kb/staging && sha256sum omniglot-bg-v1.db.xz > omniglot-bg-v1.db.xz.sha256)
# Resume from the snapshot: xz -dc kb/staging/omniglot-bg-v1.db.xz > runs/omniglot-bg-v1.db
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
metanas kb build --source "../shared/datasets/omniglot-28px.npz[class_split=background]" \
  --kb runs/omniglot-bg-v1.db --tasks 40 --archs 20 --anchors 8 --n-way 20,50,100,200 \
  --resolutions 28 --seeds 0 --workers 2 "$@"
