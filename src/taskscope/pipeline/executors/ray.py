"""The ``ray`` executor: each job becomes a Ray task (``ray.remote``) on a local or remote cluster.

``RayExecutor(address=None, num_cpus_per_job=1, init_options=None)``: on the first :meth:`map` it
connects with ``ray.init(address, **init_options)`` (``address=None`` honours ``RAY_ADDRESS``, else
starts a local instance) unless Ray is already initialised (then it reuses that session and leaves
it running on :meth:`close`).  A run whose fan-out stages are all cached never starts Ray.  Results
are gathered with ``ray.wait`` so the progress bar advances as jobs finish; they come back in input
order; a failed job raises once every job has finished (finished items are kept for the resume).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from taskscope.common.progress import progress_bar
from taskscope.pipeline.executors.base import Executor, register_executor


@register_executor("ray")
class RayExecutor(Executor):
    def __init__(self, address: str | None = None, num_cpus_per_job: float = 1, init_options: dict | None = None):
        try:
            import ray
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("executor 'ray' needs Ray: pip install 'taskscope[ray]'") from err
        self._ray = ray
        self._address, self._init_options = address, dict(init_options or {})
        self._owns_session = False
        self.num_cpus_per_job = num_cpus_per_job

    def _connect(self) -> None:
        if not self._ray.is_initialized():
            self._ray.init(address=self._address, **self._init_options)
            self._owns_session = True

    def map(self, fn: Callable[..., Any], args_list: Sequence[tuple], description: str) -> list[Any]:
        self._connect()
        remote = self._ray.remote(num_cpus=self.num_cpus_per_job)(fn)
        refs = [remote.remote(*args) for args in args_list]
        pending = list(refs)
        with progress_bar() as progress:
            bar = progress.add_task(description, total=len(refs))
            while pending:
                done, pending = self._ray.wait(pending, num_returns=1)
                progress.advance(bar, len(done))
        return self._ray.get(refs)

    def close(self) -> None:
        if self._owns_session:
            self._ray.shutdown()
