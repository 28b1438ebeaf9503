"""Tasks: class subsets of a dataset as normalized tensors, and a sampler that draws many."""

from __future__ import annotations

from metanas.tasks.sampler import TaskSampler
from metanas.tasks.task import Task, TaskSpec, make_task, proxy_resolution

__all__ = ["Task", "TaskSampler", "TaskSpec", "make_task", "proxy_resolution"]
