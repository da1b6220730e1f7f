"""A set of named tasks with one owner.

Every task the runtime starts belongs to a TaskSet: it has a name, removes itself when done, and a
failure is logged with its name instead of vanishing. ``close()`` cancels and waits (cancel-and-wait),
so nothing outlives its owner. (After livekit's ``utils/aio/task_set.py``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from agent.log import get_logger

T = TypeVar("T")
log = get_logger(__name__)


class TaskSet:
    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def start(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        if self._closed:
            coro.close()
            raise RuntimeError(f"task set {self.name} is closed; cannot start {name}")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error(
                "task failed",
                task=task.get_name(),
                owner=self.name,
                error=type(exc).__name__,
                exc_info=exc,
            )

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        return frozenset(self._tasks)

    async def cancel(self, task: asyncio.Task[Any], timeout_s: float = 5.0) -> None:
        """Cancel one task and wait until it has really finished (its finally blocks ran)."""
        task.cancel()
        await asyncio.wait({task}, timeout=timeout_s)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Cancel every task and wait for all of them."""
        self._closed = True
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                log.error("task did not stop after cancel", task=task.get_name(), owner=self.name)
