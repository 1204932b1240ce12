"""The executor of a run whose blocks ask for different executors (Mage's per-block ``executor_type``).

Each attempt goes to the executor its block was routed to (``engine.config.block_executor``):
a ``dask`` block runs as a Dask task that publishes its outputs to the variables store, a
local one on this process's threads. Values cross between them through the store: the run
loop stores every local output before a block downstream of it starts, and a local block
reads a Dask block's output back from the store (``RunSession.read``). Handles stay the
inner executors' own; this object remembers which executor owns each one.
"""

from __future__ import annotations

from typing import Any, Mapping

from dagsmith.engine.executors.base import Executor, RunSession
from dagsmith.engine.task import BlockOutcome, BlockTask


class RoutedExecutor(Executor):
    """Runs each block attempt on the executor named for its block; the others follow ``default``."""

    name = "routed"
    remote = False

    def __init__(self, executors: Mapping[str, Executor], route: Mapping[str, str], default: str) -> None:
        self.executors = dict(executors)
        self.route = dict(route)
        self.default = default
        self._owners: dict[Any, Executor] = {}
        self._opened: list[Executor] = []

    def executor_for(self, block_uuid: str) -> Executor:
        return self.executors[self.route.get(block_uuid, self.default)]

    def remote_for(self, block_uuid: str) -> bool:
        """Whether ``block_uuid`` runs in another process (its task publishes its outputs)."""
        return bool(self.executor_for(block_uuid).remote)

    def open(self, session: RunSession) -> None:
        try:
            for executor in self.executors.values():
                executor.open(session)
                self._opened.append(executor)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        opened, self._opened = self._opened, []
        for executor in opened:
            try:
                executor.close()
            except Exception:  # noqa: BLE001 - close the others too
                pass

    @property
    def capacity(self) -> int:
        return sum(executor.capacity for executor in self.executors.values())

    def submit(self, task: BlockTask) -> Any:
        executor = self.executor_for(task.block.uuid)
        handle = executor.submit(task)
        self._owners[handle] = executor
        return handle

    def outcome(self, handle: Any) -> BlockOutcome:
        return self._owners.pop(handle).outcome(handle)

    def interrupt(self, handle: Any, exc_type: type[BaseException]) -> None:
        executor = self._owners.get(handle)
        if executor is not None:
            executor.interrupt(handle, exc_type)

    def cancel_all(self) -> None:
        for executor in self.executors.values():
            executor.cancel_all()

    def problem(self) -> str | None:
        for executor in self.executors.values():
            problem = executor.problem()
            if problem:
                return problem
        return None

    @property
    def abandons_threads(self) -> bool:
        return any(executor.abandons_threads for executor in self.executors.values())
