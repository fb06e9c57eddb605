"""A study as a chain of cached stages.

A :class:`Stage` names the stages it reads (``needs``), the slice of the config it depends on
(``config_slice``), a code ``version`` and a ``run(ctx)`` function that writes its artifacts into
``ctx.out_dir``.  :func:`run_stages` executes a list of stages in order:

1. key = :func:`~taskscope.pipeline.cache.stable_hash` of (stage name, version, config slice,
   upstream keys) - so a changed slice reruns the stage and, through the keys, its dependants;
2. folder = ``run_dir/stages/{name}-{key[:12]}``; if it carries the done-marker (and not
   ``force``) the stage is skipped;
3. otherwise ``run(ctx)`` fills the folder (fan-out stages keep finished items across interruptions,
   see :meth:`StageContext.map_items`), then the marker is written;
4. files listed in ``publish`` are copied (atomically) from the folder to ``run_dir``.

``run_dir/stages.json`` records every stage's key, folder and whether it ran or came from the cache.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskscope.common.files import atomic_dir, atomic_path, atomic_write_json
from taskscope.common.paths import inside
from taskscope.pipeline.cache import is_done, mark_done, stable_hash
from taskscope.pipeline.executors.base import Executor

logger = logging.getLogger("taskscope.pipeline")


@dataclass
class StageContext:
    """What a stage's ``run`` sees: its config, its folder, its inputs' folders and the executor."""

    config: Any
    out_dir: Path
    inputs: dict[str, Path]
    executor: Executor
    run_dir: Path

    def item_dir(self, name: str) -> Path:
        return inside(self.out_dir / "items", name)  # a name that would leave the stage folder raises

    def map_items(self, job: Callable[..., Any], items: dict[str, tuple], description: str, *,
                  atomic: bool = True) -> dict[str, Path]:
        """Run ``job(*args, item_dir)`` for every ``name -> args`` whose item folder is not done yet.

        With ``atomic`` each job writes into a temporary folder which is moved into ``items/{name}``
        when the job returns; without it the job writes into ``items/{name}`` directly (for jobs that
        resume themselves, e.g. training from its last checkpoint).  Either way the item is marked
        done last, so an interrupted stage keeps every finished item.
        """
        pending = [(name, args) for name, args in items.items() if not is_done(self.item_dir(name))]
        skipped = len(items) - len(pending)
        if skipped:
            logger.info("%s: %d of %d items already done", description, skipped, len(items))
        if pending:
            self.executor.map(_run_item, [(job, args, str(self.item_dir(name)), atomic) for name, args in pending], description)
        return {name: self.item_dir(name) for name in items}


def _run_item(job: Callable[..., Any], args: tuple, item_dir: str, atomic: bool) -> str:
    if atomic:
        with atomic_dir(Path(item_dir)) as tmp:
            job(*args, tmp)
            mark_done(tmp)
    else:
        Path(item_dir).mkdir(parents=True, exist_ok=True)
        job(*args, Path(item_dir))
        mark_done(Path(item_dir))
    return item_dir


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[StageContext], None]
    config_slice: Callable[[Any], Any]
    needs: tuple[str, ...] = ()
    version: str = "1"
    publish: tuple[str, ...] = ()


@dataclass
class StageRecord:
    name: str
    key: str
    folder: Path
    cached: bool
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def stage_key(stage: Stage, config: Any, upstream: dict[str, str]) -> str:
    return stable_hash({"stage": stage.name, "version": stage.version, "config": stage.config_slice(config),
                        "upstream": {name: upstream[name] for name in stage.needs}})


def run_stages(stages: Sequence[Stage], config: Any, run_dir: Path, executor: Executor, *,
               force: bool | Sequence[str] = False) -> dict[str, StageRecord]:
    """Run (or reuse) every stage in order; ``force`` reruns all stages (``True``) or the named ones."""
    run_dir = Path(run_dir)
    keys: dict[str, str] = {}
    records: dict[str, StageRecord] = {}
    for stage in stages:
        missing = [name for name in stage.needs if name not in keys]
        if missing:
            raise ValueError(f"stage {stage.name!r} needs {missing}, which do not run before it")
        key = keys[stage.name] = stage_key(stage, config, keys)
        folder = run_dir / "stages" / f"{stage.name}-{key[:12]}"
        forced = force is True or (not isinstance(force, bool) and stage.name in force)
        if forced and folder.exists():
            shutil.rmtree(folder)
        start = time.perf_counter()
        cached = is_done(folder)
        if cached:
            logger.info("stage %s: cached (%s)", stage.name, folder.name)
        else:
            logger.info("stage %s: running (%s)", stage.name, folder.name)
            folder.mkdir(parents=True, exist_ok=True)
            ctx = StageContext(config=config, out_dir=folder, executor=executor, run_dir=run_dir,
                               inputs={name: records[name].folder for name in stage.needs})
            stage.run(ctx)
            mark_done(folder, stage=stage.name, key=key, seconds=time.perf_counter() - start)
        for name in stage.publish:
            _publish(folder / name, run_dir / name)
        records[stage.name] = StageRecord(stage.name, key, folder, cached, time.perf_counter() - start)
        logger.info("stage %s: %s in %.1f s", stage.name, "reused" if cached else "done", records[stage.name].seconds)
    atomic_write_json(run_dir / "stages.json", {
        name: {"key": r.key, "folder": str(r.folder.relative_to(run_dir)), "cached": r.cached, "seconds": r.seconds}
        for name, r in records.items()})
    return records


def _publish(source: Path, target: Path) -> None:
    if source.is_dir():
        with atomic_dir(target) as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
    else:
        with atomic_path(target) as tmp:
            shutil.copy2(source, tmp)
