"""Option checks of the knowledge-base builder: bad values fail before anything is trained."""

from __future__ import annotations

import time

import pytest
import torch

from metanas import kb_build as build
from metanas.errors import ConfigError
from metanas.kb import KnowledgeBase
from metanas.kb_build import BuildPlan, build_kb

BASE = dict(source="digits", tasks=1, archs_per_task=2, anchors=1, n_way=(4,), resolutions=(16,),
            recipe="cpu-tiny")


@pytest.mark.parametrize(("change", "needle"), [
    (dict(seed=-3), "--seed"),  # used to reach numpy as a ValueError traceback
    (dict(seeds=(0, -1)), "--seeds"),
    (dict(n_way=(1,)), "--n-way"),
    (dict(resolutions=(0,)), "--resolutions"),
    (dict(train_per_class=(1,)), "--train-per-class"),
])
def test_plan_options_are_checked_up_front(change, needle):
    with pytest.raises(ConfigError, match=needle):
        BuildPlan(**{**BASE, **change})


@pytest.mark.parametrize(("kwargs", "needle"), [
    (dict(limit=-1), "--limit"),  # used to drop the last evaluation silently
    pytest.param(dict(device="cuda"), "CUDA", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="CUDA is available here")),  # used to fail every job
])
def test_build_options_fail_before_any_task_is_registered(tmp_path, kwargs, needle):
    with KnowledgeBase(tmp_path / "kb.db") as kb:
        with pytest.raises(ConfigError, match=needle):
            build_kb(kb, BuildPlan(**BASE), executor="local", progress=False, **kwargs)
        assert kb.counts()["tasks"] == 0


def test_interrupted_process_build_does_not_run_the_rest_of_the_queue(monkeypatch):
    # Ctrl-C used to wait until every queued evaluation had been trained (and then dropped).
    monkeypatch.setattr(build, "_RUN_JOB", time.sleep)  # picklable: a "job" is a duration
    results = build._execute_process([1.0] * 12, 1, 0, build.BuildReport())
    next(results)
    start = time.perf_counter()
    results.close()
    assert time.perf_counter() - start < 6.0  # the running job (+1 queued), not all 11


def test_make_batches_groups_a_tasks_evaluations_per_seed():
    jobs = [build.Job("digits", {}, key, f"arch{i}", "cpu-tiny", seed)
            for key in ("t1", "t2") for i in range(5) for seed in (0, 1)]
    assert build.make_batches(jobs, 1) == jobs
    batches = build.make_batches(jobs, 2)
    assert sorted((j for b in batches for j in b.jobs), key=repr) == sorted(jobs, key=repr)
    for b in batches:
        assert 1 <= len(b.jobs) <= 2
        assert len({(j.task_key, j.seed) for j in b.jobs}) == 1
    assert len(batches) == 2 * 2 * 3  # 5 cells per (task, seed) -> 2 + 2 + 1


@pytest.mark.slow
def test_batched_build_matches_one_at_a_time_and_resumes_without_duplicates(tmp_path):
    plan = BuildPlan(**{**BASE, "tasks": 2, "archs_per_task": 4, "recipe": "cpu-tiny[epochs=1]"})
    with KnowledgeBase(tmp_path / "single.db") as kb:
        build_kb(kb, plan, executor="local", progress=False)
        single = {(e["task_key"], e["arch"]): e for e in kb.evaluations()}
    with KnowledgeBase(tmp_path / "batched.db") as kb:
        first = build_kb(kb, plan, executor="local", progress=False, batch=3, limit=3)
        assert first.trained == 3
        rest = build_kb(kb, plan, executor="process", workers=1, progress=False, batch=3)
        assert rest.already_done == 3 and rest.trained == 5 and rest.failed == 0
        rows = kb.evaluations()
        n_val = {e["task_key"]: kb.task(e["task_key"])["n_val"] for e in rows}
    assert len(rows) == 8 and {(e["task_key"], e["arch"]) for e in rows} == set(single)
    gaps = []
    for e in rows:
        assert e["extra"] and e["extra"]["batched"] in (1, 2, 3)
        ref = single[(e["task_key"], e["arch"])]
        assert ref["extra"] in (None, {})
        gaps.append(abs(e["val_acc"] - ref["val_acc"]) * n_val[e["task_key"]])
    # Grouped and single convolutions sum in different orders, and the drift grows with the
    # thread count and the load (3 of 115 seen in a loaded full suite): same training means a
    # few validation samples apart, not bit-identical
    assert max(gaps) <= 5 + 1e-6 and sum(gaps) / len(gaps) <= 2 + 1e-6, gaps
    with pytest.raises(ConfigError, match="--batch-archs"):
        build_kb(KnowledgeBase(tmp_path / "x.db"), plan, executor="local", batch=0)


def test_a_failed_batch_fails_each_of_its_evaluations_once(tmp_path, monkeypatch):
    def fail_batches(job):
        if isinstance(job, build.Batch):
            raise RuntimeError("out of memory")
        return build.run_job(job)

    monkeypatch.setattr(build, "_RUN_JOB", fail_batches)
    plan = BuildPlan(**{**BASE, "archs_per_task": 5, "recipe": "cpu-tiny[epochs=1]"})
    with KnowledgeBase(tmp_path / "kb.db") as kb:
        report = build_kb(kb, plan, executor="local", progress=False, batch=2)
        assert (report.planned, report.trained, report.failed) == (5, 0, 5)
        assert len(report.errors) == 5 and all("out of memory" in e for e in report.errors)
        assert len({e.split(":")[0] for e in report.errors}) == 5  # one per evaluation
        assert kb.counts()["evaluations"] == 0
