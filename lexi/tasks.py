"""The registry of what `lexi train` can train, by `config.task`.

A task (the `Task` protocol in lexi/train/task.py) builds its run, data, state and step;
the loop (lexi/train/loop.py) receives one and does the rest. Adding a task is one file
with a class and one `register` line here.
"""
from __future__ import annotations

from typing import Callable

from lexi.errors import UserError
from lexi.train.task import LanguageModelTask, Task
from lexi.zett.task import ZettTask

_TASKS: dict[str, Callable[[], Task]] = {}


def register(name: str, make: Callable[[], Task]) -> None:
    _TASKS[name] = make


register("lm", LanguageModelTask)
register("zett", ZettTask)


def task_for(cfg) -> Task:
    """The task `config.task` names (default "lm")."""
    kind = cfg.get("task", "lm")
    if kind not in _TASKS:
        raise UserError(f"config.task must be one of {', '.join(repr(k) for k in _TASKS)}, got {kind!r}")
    return _TASKS[kind]()
