"""The ``ray`` executor: each job becomes a Ray task (``ray.remote``) on a local or remote cluster.

``RayExecutor(address=None, num_cpus_per_job=1, init_options=None)``: connects with
``ray.init(address, **init_options)`` unless Ray is already initialised (then it reuses that
session and leaves it running on :meth:`close`).  Results are gathered with ``ray.wait`` so the
progress bar advances as jobs finish; they come back in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from taskscope.pipeline.executors.base import Executor, register_executor
from taskscope.pipeline.progress import new_progress


@register_executor("ray")
class RayExecutor(Executor):
    def __init__(self, address: str | None = None, num_cpus_per_job: float = 1, init_options: dict | None = None):
        try:
            import ray
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("executor 'ray' needs Ray: pip install 'taskscope[ray]'") from err
        self._ray = ray
        self._owns_session = not ray.is_initialized()
        if self._owns_session:
            ray.init(address=address, **(init_options or {}))
        self.num_cpus_per_job = num_cpus_per_job

    def map(self, fn: Callable[..., Any], args_list: Sequence[tuple], description: str) -> list[Any]:
        remote = self._ray.remote(num_cpus=self.num_cpus_per_job)(fn)
        refs = [remote.remote(*args) for args in args_list]
        pending = list(refs)
        with new_progress() as progress:
            bar = progress.add_task(description, total=len(refs))
            while pending:
                done, pending = self._ray.wait(pending, num_returns=1)
                progress.advance(bar, len(done))
        return self._ray.get(refs)

    def close(self) -> None:
        if self._owns_session:
            self._ray.shutdown()
