"""A study as a chain of cached stages.

A :class:`Stage` names the stages it reads (``needs``), the slice of the config it depends on
(``config_slice``, which includes a content hash of any data files it reads), a code ``version``
(bumped when the stage's outputs change) and a ``run(ctx)`` function that writes its artifacts into
``ctx.out_dir``.  :func:`run_stages` executes a list of stages in order:

1. key = :func:`~taskscope.common.hashing.digest` of (stage name, version, config slice,
   upstream keys) - so a changed slice or code version reruns the stage and, through the keys, its
   dependants;
2. folder = ``run_dir/stages/{name}-{key[:12]}``; it is reused when it carries the done-marker and every
   file still matches the sha256 the marker lists (:func:`~taskscope.pipeline.cache.verify_done`), unless
   the stage is forced - a ``force``d stage, or one downstream (transitively, through ``needs``) of a
   forced stage or of a stage whose folder failed verification, is rerun from scratch;
3. otherwise ``run(ctx)`` fills the folder (fan-out stages keep finished, verified items across
   interruptions, see :meth:`StageContext.map_items`; leftover temporaries are removed first), then the
   marker is written with the files' digests, the seconds taken and the fast-path decisions (of the
   stage and its items, each item's stored in ``items/{name}/_fast_paths.json``);
4. files listed in ``publish`` are copied (atomically, temporaries skipped) from the folder to ``run_dir``.

``run_dir/stages.json`` records every stage's key, folder and whether it ran or came from the cache.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskscope.common.fastpaths import FastPathRecord, collect_fast_paths, merge_fast_paths
from taskscope.common.files import atomic_dir, atomic_path, atomic_write_json, is_temporary, remove_temporaries
from taskscope.common.hashing import digest
from taskscope.common.paths import inside
from taskscope.common.progress import progress_label
from taskscope.pipeline.cache import DONE_MARKER, ITEMS, is_done, mark_done, read_marker, verify_done
from taskscope.pipeline.executors.base import Executor

FAST_PATHS_FILE = "_fast_paths.json"

logger = logging.getLogger("taskscope.pipeline")


@dataclass
class StageContext:
    """What a stage's ``run`` sees: its config, its folder, its inputs' folders and the executor."""

    config: Any
    out_dir: Path
    inputs: dict[str, Path]
    executor: Executor
    run_dir: Path
    records: dict[str, StageRecord] = field(default_factory=dict)  # the stages finished before this one

    def item_dir(self, name: str) -> Path:
        return inside(self.out_dir / "items", name)  # a name that would leave the stage folder raises

    def tracking(self, run_name: str) -> Any:
        """Where a training job of this stage sends its tracker output (``taskscope.train.logging.Tracking``): the
        run's ``logs`` folder (TensorBoard: ``logs/tensorboard/<run_name>``), the study's name as the project."""
        from taskscope.train.logging import Tracking

        return Tracking(logs_dir=self.run_dir / "logs", run_name=run_name,
                        project=str(getattr(self.config, "name", "taskscope")))

    def map_items(self, job: Callable[..., Any], items: dict[str, tuple], description: str, *,
                  atomic: bool = True) -> dict[str, Path]:
        """Run ``job(*args, item_dir)`` for every ``name -> args`` whose item folder is not done yet.

        With ``atomic`` each job writes into a temporary folder which is moved into ``items/{name}``
        when the job returns; without it the job writes into ``items/{name}`` directly (for jobs that
        resume themselves, e.g. training from its last checkpoint).  Either way the item is marked
        done last (with its files' sha256), so an interrupted stage keeps every finished item; a finished
        item whose files no longer match its marker is named in a warning and run again.
        """
        pending = [(name, args) for name, args in items.items() if not _item_intact(self.item_dir(name), atomic)]
        skipped = len(items) - len(pending)
        if skipped:
            logger.info("%s: %d of %d items already done", description, skipped, len(items))
        if pending:
            self.executor.map(_run_item, [(job, args, str(self.item_dir(name)), atomic, f"{description}: {name}")
                                          for name, args in pending], description)
        return {name: self.item_dir(name) for name in items}


def _item_intact(folder: Path, atomic: bool) -> bool:
    """A finished item whose files match its marker.  A damaged one is named and rerun: an atomic item from
    scratch; a resuming one (``atomic=False``) loses only its marker, its job resumes from what is intact."""
    if not is_done(folder):
        return False
    problems = verify_done(folder)
    if problems:
        logger.warning("item %s: %s; running it again", folder, "; ".join(problems))
        if atomic:
            shutil.rmtree(folder)
        else:
            (folder / DONE_MARKER).unlink()
    return not problems


def _run_item(job: Callable[..., Any], args: tuple, item_dir: str, atomic: bool, label: str = "") -> str:
    """One item job under its own fast-path collector; the record goes to ``_fast_paths.json``, then the marker.
    Its progress bars carry ``label`` (stage and item: ``extract hidden states: exp-pretrained``)."""
    def run_into(folder: Path) -> None:
        with collect_fast_paths(isolated=True) as fast_paths, progress_label(label):
            job(*args, folder)
        atomic_write_json(folder / FAST_PATHS_FILE, fast_paths)
        mark_done(folder)

    if atomic:
        with atomic_dir(Path(item_dir)) as tmp:
            run_into(tmp)
    else:
        Path(item_dir).mkdir(parents=True, exist_ok=True)
        run_into(Path(item_dir))
    return item_dir


def item_fast_paths(folder: Path) -> FastPathRecord:
    """The fast-path decisions of every finished item of a stage folder, summed."""
    root = Path(folder) / ITEMS
    records = [json.loads((p / FAST_PATHS_FILE).read_text()) for p in sorted(root.glob("*"))
               if not is_temporary(p.name) and (p / FAST_PATHS_FILE).is_file()] if root.is_dir() else []
    return merge_fast_paths(records)


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
    return digest({"stage": stage.name, "version": stage.version, "config": stage.config_slice(config),
                   "upstream": {name: upstream[name] for name in stage.needs}})


def forced_stages(stages: Sequence[Stage], force: bool | str | Sequence[str]) -> set[str]:
    """The stages ``force`` names (``True`` / ``"all"``: every stage) and every stage downstream of them.

    Unknown names raise ``ValueError`` listing the valid ones.
    """
    names = [stage.name for stage in stages]
    if force is True or force == "all" or (not isinstance(force, (bool, str)) and "all" in force):
        return set(names)
    if force is False or not force:
        return set()
    chosen = {force} if isinstance(force, str) else set(force)
    unknown = sorted(chosen - set(names))
    if unknown:
        raise ValueError(f"--force: unknown stage {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(names)}, or all")
    return downstream(stages, chosen)


def downstream(stages: Sequence[Stage], roots: set[str]) -> set[str]:
    """``roots`` and every stage that needs one of them, transitively (``stages`` in run order)."""
    found = set(roots)
    for stage in stages:
        if found & set(stage.needs):
            found.add(stage.name)
    return found


def run_stages(stages: Sequence[Stage], config: Any, run_dir: Path, executor: Executor, *,
               force: bool | str | Sequence[str] = False,
               on_stage: Callable[[str, StageRecord], None] | None = None) -> dict[str, StageRecord]:
    """Run (or reuse) every stage in order; ``force`` names stages to rerun with their dependants, or all.

    ``on_stage(name, record)`` is called as each stage finishes (so a failed run still knows what it did).
    """
    run_dir = Path(run_dir)
    rerun = forced_stages(stages, force)
    keys: dict[str, str] = {}
    records: dict[str, StageRecord] = {}
    for stage in stages:
        missing = [name for name in stage.needs if name not in keys]
        if missing:
            raise ValueError(f"stage {stage.name!r} needs {missing}, which do not run before it")
        if rerun & set(stage.needs):
            rerun.add(stage.name)
        key = keys[stage.name] = stage_key(stage, config, keys)
        folder = run_dir / "stages" / f"{stage.name}-{key[:12]}"
        start = time.perf_counter()
        if stage.name in rerun and folder.exists():
            shutil.rmtree(folder)
        finished = is_done(folder)
        cached = finished and _stage_intact(stage, folder)
        if finished and not cached:
            rerun.add(stage.name)  # rebuilt under the same key: the stages reading it are rebuilt too
        if cached:
            logger.info("stage %s: cached (%s)", stage.name, folder.name)
        else:
            logger.info("stage %s: running (%s)", stage.name, folder.name)
            folder.mkdir(parents=True, exist_ok=True)
            remove_temporaries(folder)
            ctx = StageContext(config=config, out_dir=folder, executor=executor, run_dir=run_dir,
                               inputs={name: records[name].folder for name in stage.needs}, records=dict(records))
            with collect_fast_paths() as fast_paths:
                stage.run(ctx)
            mark_done(folder, stage=True, name=stage.name, key=key, version=stage.version,
                      seconds=time.perf_counter() - start,
                      fast_paths=merge_fast_paths([fast_paths, item_fast_paths(folder)]))
        for name in stage.publish:
            _publish(folder / name, run_dir / name)
        marker = read_marker(folder)
        records[stage.name] = StageRecord(stage.name, key, folder, cached, time.perf_counter() - start,
                                          {"version": stage.version, "compute_seconds": marker.get("seconds"),
                                           "fast_paths": marker.get("fast_paths", {})})
        logger.info("stage %s: %s in %.1f s", stage.name, "reused" if cached else "done", records[stage.name].seconds)
        if on_stage is not None:
            on_stage(stage.name, records[stage.name])
    atomic_write_json(run_dir / "stages.json", {
        name: {"key": r.key, "folder": str(r.folder.relative_to(run_dir)), "cached": r.cached, "seconds": r.seconds}
        for name, r in records.items()})
    return records


def _stage_intact(stage: Stage, folder: Path) -> bool:
    """A finished stage folder whose files match its marker; otherwise it is named, unmarked and rerun."""
    problems = verify_done(folder, stage=True)
    if not problems:
        return True
    logger.warning("stage %s: %s (in %s); rerunning the stage and every stage after it that reads it",
                   stage.name, "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else ""),
                   folder)
    (folder / DONE_MARKER).unlink()  # the rerun keeps every intact item (`StageContext.map_items` checks each)
    return False


def _publish(source: Path, target: Path) -> None:
    if source.is_dir():
        with atomic_dir(target) as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=lambda _, names: [n for n in names if is_temporary(n)])
    else:
        with atomic_path(target) as tmp:
            shutil.copy2(source, tmp)
