"""The Ray executor of ``kb build``: same guarantees as the process pool (each evaluation stored
once, resumable, a lost worker's job retried), plus a clear error when Ray is missing."""

from __future__ import annotations

import json
import os
import sys

import pytest
from typer.testing import CliRunner

from metanas import kb_build as build
from metanas.cli import app
from metanas.kb import KnowledgeBase
from metanas.kb_build import BuildPlan, build_kb

runner = CliRunner()
BUILD = ["kb", "build", "--source", "digits", "--tasks", "2", "--archs", "3", "--anchors", "1",
         "--n-way", "4", "--resolutions", "16", "--recipe", "cpu-tiny"]
PLAN = BuildPlan(source="digits", tasks=1, archs_per_task=2, anchors=1, n_way=(4,),
                 resolutions=(16,), recipe="cpu-tiny")


def _report(output: str) -> dict:
    return json.loads(output[output.index("{"):])


def _keys(db) -> list[tuple]:
    with KnowledgeBase(db, readonly=True) as kb:
        return [(r["task_key"], r["arch"], r["seed"]) for r in kb.evaluations()]


@pytest.mark.slow
def test_ray_build_and_resume(tmp_path):
    ray = pytest.importorskip("ray")
    db = tmp_path / "kb.db"
    res = runner.invoke(app, [*BUILD, "--kb", str(db), "--executor", "ray", "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert _report(res.output)["trained"] == 6
    keys = _keys(db)
    assert len(keys) == 6 and len(set(keys)) == 6
    assert not ray.is_initialized()  # we started it, so we shut it down
    res = runner.invoke(app, [*BUILD, "--kb", str(db), "--executor", "ray", "--workers", "2"])
    assert res.exit_code == 0, res.output
    report = _report(res.output)
    assert report["already_done"] == 6 and report["trained"] == 0
    assert _keys(db) == keys


@pytest.fixture(scope="class")
def shared_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
class TestLostWorker:
    """A job whose worker process dies. One Ray instance for the class, which the executor
    must leave running; it is shut down after the class so no other test finds Ray running."""

    def test_retried_and_stored_once(self, tmp_path, monkeypatch, shared_ray):
        marker = tmp_path / "crashed"
        run_job = build.run_job

        def dies_once(job):  # nested, so Ray ships it by value to its workers
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return run_job(job)
            os._exit(1)  # the first job to get here loses its worker process

        monkeypatch.setattr(build, "_RUN_JOB", dies_once)
        with KnowledgeBase(tmp_path / "kb.db") as kb:
            report = build_kb(kb, PLAN, workers=2, executor="ray", progress=False)
            keys = [(r["task_key"], r["arch"]) for r in kb.evaluations()]
        assert marker.exists()
        assert (report.trained, report.failed) == (2, 0), report.errors
        assert len(keys) == 2 and len(set(keys)) == 2
        assert shared_ray.is_initialized()  # not ours to shut down

    def test_lost_for_good_is_one_error(self, tmp_path, monkeypatch, shared_ray):
        run_job, doomed = build.run_job, PLAN.anchor_archs()[0].to_string()

        def always_dies(job):
            if job.arch == doomed:
                os._exit(1)
            return run_job(job)

        monkeypatch.setattr(build, "_RUN_JOB", always_dies)
        with KnowledgeBase(tmp_path / "kb.db") as kb:
            report = build_kb(kb, PLAN, workers=2, executor="ray", max_retries=1, progress=False)
            archs = [r["arch"] for r in kb.evaluations()]
        assert (report.trained, report.failed) == (1, 1)
        assert "worker lost" in report.errors[0] and doomed in report.errors[0]
        assert len(archs) == 1 and archs[0] != doomed


def test_ray_executor_without_ray_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    res = runner.invoke(app, [*BUILD, "--kb", str(tmp_path / "kb.db"), "--executor", "ray"])
    assert res.exit_code == 2
    assert "needs Ray" in res.output and "pip install ray" in res.output
    assert "Traceback" not in res.output


def test_ray_bad_address_fails_before_planning(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    db = tmp_path / "kb.db"
    res = runner.invoke(app, [*BUILD, "--kb", str(db), "--executor", "ray",
                              "--ray-address", "auto"])  # no cluster is running
    assert res.exit_code == 2 and "cannot connect to Ray" in res.output
    assert not db.exists()  # nothing planned or stored, so the KB the command created is gone
