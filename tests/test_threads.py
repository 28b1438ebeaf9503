"""Thread counts follow the machine's load unless the user chose one."""

from __future__ import annotations

import os

import torch

from metanas import threads


def test_free_cores_follow_the_load(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "getloadavg", lambda: (5.2, 0.0, 0.0))
    assert threads.threads_for_load() == 3
    monkeypatch.setattr(os, "getloadavg", lambda: (20.0, 0.0, 0.0))
    assert threads.threads_for_load() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert threads.threads_for_load() == 8


def test_user_choice_wins(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        monkeypatch.setattr(threads, "threads_for_load", lambda: 2)
        assert threads.use_free_cores() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert threads.use_free_cores() == 2
    finally:
        torch.set_num_threads(before)
