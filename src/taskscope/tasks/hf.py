"""The ``hf:NAME`` source: a Hugging Face dataset (hub id, local dataset folder, or a packaged builder such as
``json`` with ``data_files``), one instance per row, through ``datasets.load_dataset``.

Options: ``config``, ``split`` (default ``train``), ``revision`` (a hub branch, tag or commit), ``data_files``,
``fields`` (which column holds what, :class:`~taskscope.tasks.records.RecordFields`; e.g.
``{input: question, targets: answer}``), ``task`` (the task of rows without a task column; default: the last part
of ``NAME``), ``definition``, ``max_records``, ``n_instances``, ``seed``, ``skip_bad``.

Order of operations in :func:`load_hf`:

1. open the dataset (:func:`hf_rows`): with ``max_records`` as a stream (``streaming=True``), so only the first
   ``max_records`` rows are ever read - the split is neither downloaded nor prepared in full (a dataset that
   cannot be streamed, e.g. offline with the split in the local cache, is read in full instead, logged); without
   it, the whole split (Hugging Face's cache serves later loads);
2. map a targets column that is a ``ClassLabel`` from its integer to its name;
3. :func:`~taskscope.tasks.records.suite_from_records` (bad rows name the dataset, the row and the column).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from taskscope.tasks.core import TaskError, TaskSuite
from taskscope.tasks.records import record_fields, suite_from_records
from taskscope.tasks.registry import register_source

DataFiles = str | Sequence[str] | Mapping[str, str | Sequence[str]]
logger = logging.getLogger("taskscope.tasks")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def hf_rows(name: str, *, config: str | None = None, split: str = "train", revision: str | None = None,
            data_files: DataFiles | None = None, max_records: int | None = None,
            where: str = "hf", task: str | None = None) -> tuple[Iterator[tuple[str, dict[str, Any]]], Any]:
    """``(rows, features)``: an iterator of ``("row N", row)`` over split ``split`` of dataset ``name`` and the
    split's features (``None`` when a stream does not know them).  With ``max_records`` the dataset is streamed and
    the iterator stops after that many rows.  Any failure (offline, unknown name / config / split, bad file)
    raises a one-line :class:`TaskError` naming the dataset; ``where`` and ``task`` name the file and task."""
    import datasets

    label = f"Hugging Face dataset {name!r}" + (f" (config {config!r})" if config else "") + f", split {split!r}"
    def load(streaming: bool) -> Any:
        return datasets.load_dataset(name, config, split=split, revision=revision, data_files=data_files,
                                     streaming=streaming)

    try:
        data = load(streaming=max_records is not None)
    except Exception as err:  # offline, unknown name, bad split or config: all reported the same way
        data = None
        if max_records is not None:  # e.g. offline with the split in the local cache: a stream needs the hub
            try:
                data = load(streaming=False)
                logger.info("%s could not be streamed (%s); read in full (from the cache) instead", label,
                            _first_line(err))
            except Exception:
                data = None
        if data is None:
            raise TaskError(f"cannot load {label}: {_first_line(err)}", file=where, task=task,
                            field="records") from err

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        iterator = iter(data)
        index = 0
        while max_records is None or index < max_records:
            try:
                row = next(iterator)
            except StopIteration:
                return
            except Exception as err:  # a stream reads its files lazily: a bad file shows up here
                raise TaskError(f"cannot read row {index} of {label}: {_first_line(err)}", file=where, task=task,
                                field="records") from err
            yield f"row {index}", dict(row)
            index += 1

    return rows(), getattr(data, "features", None)


def _label_names(features: Any, column: str) -> list[str] | None:
    import datasets

    feature = features.get(column) if isinstance(features, Mapping) else None
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


@register_source("hf")
def load_hf(
    path: str | None,
    *,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
    data_files: DataFiles | None = None,
    fields: Mapping[str, str] | None = None,
    task: str | None = None,
    definition: str = "",
    max_records: int | None = None,
    n_instances: int | None = None,
    seed: int = 0,
    skip_bad: bool = False,
) -> TaskSuite:
    """Load a Hugging Face dataset as a suite; see the module docstring for the order of operations."""
    if not path:
        raise TaskError("the hf source needs a dataset: 'hf:NAME'", field="spec")
    if max_records is not None and max_records < 1:
        raise TaskError(f"max_records must be at least 1, got {max_records}", file=path, field="max_records")
    keys = record_fields(fields, file=path)
    rows, features = hf_rows(path, config=config, split=split, revision=revision, data_files=data_files,
                             max_records=max_records, where=path)
    names = _label_names(features, keys.targets)
    if names is not None:
        rows = ((where, {**row, keys.targets: names[row[keys.targets]]}
                 if isinstance(row.get(keys.targets), int) and 0 <= row[keys.targets] < len(names) else row)
                for where, row in rows)
    default_task = task or path.rstrip("/").replace("\\", "/").split("/")[-1]
    return suite_from_records(rows, name=f"hf:{path}", file=path, source="hf", fields=keys,
                              default_task=default_task, definition=definition, n_instances=n_instances, seed=seed,
                              skip_bad=skip_bad, metadata={"dataset": path, "config": config, "split": split,
                                                           "revision": revision})
