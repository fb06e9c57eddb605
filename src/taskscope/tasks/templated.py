"""The ``templated:PATH`` source: FLAN-style datasets of records plus instruction templates.

``PATH`` is a YAML or JSON spec (read with ``yaml.safe_load``; nothing in it is executed)::

    name: my-suite                      # optional, defaults to the file name
    datasets:
      - name: review_sentiment          # task name
        cluster: sentiment              # or clusters: [sentiment, classification]
        records: data/reviews.jsonl     # JSONL / JSON list / CSV / parquet, relative to the spec file
        # records: {hf: imdb, split: train, config: null, revision: null, data_files: null}
        #   a Hugging Face dataset (hub id or local dataset folder; with max_records it is streamed)
        definition: Say whether the review is positive or negative.   # optional
        id_field: review_id             # optional; default "<name>-<row index>"
        max_records: 1000               # optional; the first N records (the rest is never read)
        templates:
          - input: "Review: {text}\nIs this review positive or negative?"
            output: "{label}"
            verbalizer: {label: {"0": negative, "1": positive}}
          - input: "{text}\nDid the writer like it?"
            output: "{label}"
            verbalizer: {label: {"0": "no", "1": "yes"}}

Order of operations in :func:`load_templated`:

1. read and validate the spec (pydantic; unknown keys are errors naming the file and key);
2. per dataset: load its records, check every template against the first record (a template naming
   an unknown field raises :class:`TaskError` naming file, task and field), render every template on every
   record (a missing value - an empty CSV cell, a null - or a label the verbalizer does not map raises
   :class:`TaskError` naming the records file, the record's line / row and the field; with
   ``on_bad_record="skip"`` the record is left out, warned about and listed in ``suite.dropped``), and build
   instances whose ``fields`` hold the record and whose ``input``/``outputs`` are template 0's rendering;
3. optionally cap each task to ``n_instances`` by a seeded draw.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from taskscope.tasks.core import Dropped, Instance, Task, TaskError, TaskSuite, Template, name_problem
from taskscope.tasks.hf import hf_rows
from taskscope.tasks.registry import register_source
from taskscope.tasks.splits import cap_instances


class TemplateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str
    output: str | None = None  # default "{answer}", or "" when outputs_field holds the references
    verbalizer: dict[str, dict[str, str]] = Field(default_factory=dict)
    outputs_field: str | None = None


class HFRecords(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hf: str
    split: str = "train"
    config: str | None = None
    revision: str | None = None  # a hub branch, tag or commit
    data_files: str | list[str] | dict[str, str | list[str]] | None = None


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    cluster: str | None = None
    clusters: list[str] = Field(default_factory=list)
    records: str | HFRecords
    templates: list[TemplateSpec] = Field(min_length=1)
    definition: str = ""
    id_field: str | None = None
    max_records: int | None = Field(default=None, ge=1)
    domains: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, value: str) -> str:
        problem = name_problem(value)
        if problem:
            raise ValueError(f"task name {value!r} {problem}")
        return value


class TemplatedSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    datasets: list[DatasetSpec] = Field(min_length=1)


def _read_spec(path: Path) -> TemplatedSpec:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except OSError as err:
        raise TaskError(f"cannot read templated spec: {err}", file=str(path)) from err
    except yaml.YAMLError as err:
        raise TaskError(f"malformed YAML/JSON: {err}", file=str(path)) from err
    try:
        return TemplatedSpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = list(first["loc"])
        task = None
        if len(loc) >= 2 and loc[0] == "datasets" and isinstance(raw, dict):
            try:
                task = raw["datasets"][loc[1]].get("name")
            except (IndexError, KeyError, TypeError, AttributeError):
                task = None
        where = ".".join(str(part) for part in loc)
        raise TaskError(f"invalid templated spec: {first['msg']} ({err.error_count()} error(s))",
                        file=str(path), task=task, field=where or None) from err


def _numbered_lines(path: Path, limit: int | None) -> list[tuple[int, str]]:
    """``(line number, line)`` of the first ``limit`` non-blank lines (all without a limit), read lazily."""
    numbered: list[tuple[int, str]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if limit is not None and len(numbered) >= limit:
                break
            if line.strip():
                numbered.append((number, line))
    return numbered


def read_records(spec: DatasetSpec, base: Path, *, file: str) -> tuple[list[dict[str, Any]], list[str], str]:
    """``(records, where, records_file)``: the dataset's records as dicts (local JSONL / JSON / CSV / parquet, or a
    Hugging Face dataset), where each one is in its file (``record 2, line 3`` of a JSONL file or of a CSV file
    without multi-line cells, else ``record 2``) and the file they came from."""
    where: list[str] | None = None
    source = file
    if isinstance(spec.records, HFRecords):
        hf = spec.records
        rows, _ = hf_rows(hf.hf, config=hf.config, split=hf.split, revision=hf.revision, data_files=hf.data_files,
                          max_records=spec.max_records, where=file, task=spec.name)
        records = [row for _, row in rows]
    else:
        path = (base / spec.records).resolve()
        source = str(path)
        if not path.is_file():
            raise TaskError(f"records file not found: {path}", file=file, task=spec.name, field="records")
        suffix = path.suffix.lower()
        try:
            if suffix == ".jsonl":  # read line by line, no further than max_records records
                numbered = _numbered_lines(path, spec.max_records)
                records = [json.loads(line) for _, line in numbered]
                where = [f"record {i}, line {n}" for i, (n, _) in enumerate(numbered)]
            elif suffix == ".json":
                records = json.loads(path.read_text(encoding="utf-8"))
            elif suffix in (".csv", ".tsv"):
                import pandas as pd

                # an empty cell is a missing value (None), not an empty string: a template using it is an error
                frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False,
                                    na_values=[""], nrows=spec.max_records)
                records = [{k: None if pd.isna(v) else v for k, v in row.items()} for row in frame.to_dict("records")]
                where = [f"record {i}, line {i + 2}" for i in range(len(records))]  # line 1: the header
            elif suffix == ".parquet":
                import pandas as pd

                records = pd.read_parquet(path).to_dict("records")
            else:
                raise TaskError(f"unsupported records format {suffix!r} (use .jsonl, .json, .csv, .tsv, .parquet)",
                                file=str(path), task=spec.name, field="records")
        except (ValueError, OSError) as err:
            if isinstance(err, TaskError):
                raise
            raise TaskError(f"cannot read records: {err}", file=str(path), task=spec.name, field="records") from err
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise TaskError("records must be a list of objects", file=file, task=spec.name, field="records")
    where = where if where is not None else [f"record {i}" for i in range(len(records))]
    if spec.max_records is not None:
        records, where = records[: spec.max_records], where[: spec.max_records]
    if not records:
        raise TaskError("dataset has no records", file=file, task=spec.name, field="records")
    return records, where, source


def build_task(spec: DatasetSpec, records: list[dict[str, Any]], *, file: str, where: list[str] | None = None,
               records_file: str | None = None, on_bad_record: str = "error") -> tuple[Task, Dropped | None]:
    """A templated :class:`Task` and the records it dropped; every template is checked against the first record
    (an unknown field is an error), then rendered on every record: a record with a missing value or a value its
    verbalizer does not map raises :class:`TaskError` naming the file, the record and the field, or with
    ``on_bad_record="skip"`` is left out and listed in the returned :class:`Dropped`."""
    where = where or [f"record {i}" for i in range(len(records))]
    records_file = records_file or file
    templates = tuple(
        Template(input=t.input, output=t.output if t.output is not None else "" if t.outputs_field else "{answer}",
                 verbalizer=t.verbalizer, outputs_field=t.outputs_field)
        for t in spec.templates
    )
    first = records[0]
    for i, template in enumerate(templates):
        unknown = sorted((template.fields() | {template.outputs_field} - {None}) - set(first))
        if unknown:
            raise TaskError(f"template {i} names unknown field {unknown[0]!r}; the records have {sorted(first)}",
                            file=file, task=spec.name, field=f"templates[{i}].{unknown[0]}")
    if spec.id_field is not None and spec.id_field not in first:
        raise TaskError(f"id_field {spec.id_field!r} is not a record field; the records have {sorted(first)}",
                        file=file, task=spec.name, field="id_field")
    instances = []
    skipped: list[str] = []
    reasons: list[str] = []
    seen: set[str] = set()
    for index, record in enumerate(records):
        inst_id = str(record[spec.id_field]) if spec.id_field else f"{spec.name}-{index}"
        if inst_id in seen:
            raise TaskError(f"duplicate instance id {inst_id!r} in {where[index]}", file=records_file,
                            task=spec.name, field=spec.id_field or "id")
        seen.add(inst_id)
        try:
            rendered = [template.render(record, task=spec.name) for template in templates]
        except TaskError as err:
            message = f"{where[index]}: {err.detail}"
            if on_bad_record != "skip":
                raise TaskError(f"{message} (on_bad_record: skip leaves such records out)", file=records_file,
                                task=spec.name, field=err.field) from err
            skipped.append(where[index])
            reasons.append(message)
            continue
        text, outputs = rendered[0]
        instances.append(Instance(id=inst_id, input=text, outputs=outputs, fields=record))
    if not instances:
        raise TaskError(f"every record was skipped as bad, e.g. {reasons[0]}", file=records_file, task=spec.name,
                        field="records")
    clusters = list(spec.clusters) or ([spec.cluster] if spec.cluster else [])
    if spec.cluster and spec.cluster not in clusters:
        clusters.insert(0, spec.cluster)
    task = Task(
        name=spec.name,
        instances=tuple(instances),
        clusters=tuple(clusters),
        definition=spec.definition,
        domains=tuple(spec.domains),
        source="templated",
        sources=tuple(spec.sources),
        templates=templates,
        metadata={"file": file},
    )
    dropped = None
    if skipped:
        dropped = Dropped(task=spec.name, reason=f"bad records skipped (on_bad_record: skip), e.g. {reasons[0]}",
                          file=records_file, records=tuple(skipped))
    return task, dropped


@register_source("templated")
def load_templated(path: str | None, *, n_instances: int | None = None, seed: int = 0,
                   on_bad_record: str = "error") -> TaskSuite:
    """Load the datasets of a templated spec file; see the module docstring for the order of operations.

    ``on_bad_record``: ``"error"`` (default) fails on a record with a missing value or an unmapped verbalizer
    label, naming file, record and field; ``"skip"`` leaves such records out with a warning, listed in
    ``suite.dropped``.
    """
    if not path:
        raise TaskError("the templated source needs a spec file: 'templated:PATH'", field="spec")
    if on_bad_record not in ("error", "skip"):
        raise TaskError(f"on_bad_record must be 'error' or 'skip', got {on_bad_record!r}", field="on_bad_record")
    spec_path = Path(path).expanduser()
    spec = _read_spec(spec_path)
    tasks, dropped = [], []
    for dataset in spec.datasets:
        records, where, records_file = read_records(dataset, spec_path.parent, file=str(spec_path))
        task, bad = build_task(dataset, records, file=str(spec_path), where=where, records_file=records_file,
                               on_bad_record=on_bad_record)
        if bad is not None:
            warnings.warn(f"templated: skipped {len(bad.records)} of {len(records)} record(s) of {bad}", stacklevel=2)
            dropped.append(bad)
        tasks.append(cap_instances(task, n_instances, seed) if n_instances is not None else task)
    return TaskSuite(name=spec.name or spec_path.stem, tasks=tuple(tasks), dropped=tuple(dropped))
