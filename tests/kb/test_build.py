"""Option checks of the knowledge-base builder: bad values fail before anything is trained."""

from __future__ import annotations

import time

import pytest
import torch

from metanas.errors import ConfigError
from metanas.kb import KnowledgeBase, build
from metanas.kb.build import BuildPlan, build_kb

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
