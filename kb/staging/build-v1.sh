#!/bin/bash
# KB v1 build: dense tasks first (the first 5 tasks of the plan, extended to 300 cells), then the
# 300-task main plan. Both are the same plan seed, so the dense tasks and anchors are shared.
cd /work/main && . .venv/bin/activate
export OMP_NUM_THREADS=1
COMMON="--source ../shared/datasets/tiny-imagenet-200-64px.zip --kb runs/kb-v1.db --anchors 10 --elite-from kb/tinyimagenet-v0.db --n-way 5,10 --resolutions 16,16,16,32 --train-per-class 50,100 --recipe cpu-proxy[epochs=12] --seed 1 --workers 2"
metanas kb build $COMMON --tasks 5 --archs 300 --elite 60 > runs/kb-v1-dense.log 2>&1
metanas kb build $COMMON --tasks 300 --archs 30 --elite 10 > runs/kb-v1.log 2>&1
