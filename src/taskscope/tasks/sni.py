"""The ``sni:PATH`` source: Super-NaturalInstructions task files.

``PATH`` is either an SNI checkout (``tasks/*.json`` and ``splits/<split>/train_tasks.txt`` /
``test_tasks.txt``), any folder of task JSON files (split lists, when present, lie beside them),
or one task JSON file.

Order of operations in :func:`load_sni`:

1. list the task files (all of them, or the ``tasks`` asked for by name);
2. parse each file into a :class:`Task` (:func:`parse_sni_task`), collecting *every* bad file;
   bad files raise one :class:`TaskError` listing them all, or with ``skip_bad=True`` are
   skipped with one warning listing them;
3. mark each task ``metadata["split"] = "seen" | "unseen"`` from the split lists when present;
4. apply the filters (:class:`SNIFilters`, a preset merged with explicit options): English only,
   excluded categories / domains / sources, minimum instance count.  A task asked for by name
   that a filter drops raises :class:`TaskError` naming it and the field; other dropped tasks get one
   warning listing them, and every dropped task (and skipped bad file) is in ``suite.dropped``;
5. optionally cap each task to ``n_instances`` by a seeded draw (:func:`splits.cap_instances`).

Schema tolerance: ``Definition`` and ``Categories`` may be a string or a list (a list
``Definition`` uses its first entry, as Tk-Instruct does, and keeps all in
``metadata["definitions"]``); optional keys may be missing (missing language keys count as
unknown and pass the English filter); every instance's ``output`` is a list of references
(a bare string is accepted); instances without ``id`` get ``"<task name>-<index>"``.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from taskscope.tasks.core import Dropped, Example, Instance, Task, TaskError, TaskSuite
from taskscope.tasks.registry import register_source
from taskscope.tasks.splits import cap_instances

# SNI's 12 evaluation (held-out) task categories (Wang et al., 2022, section 4), which Mueller et al.
# also keep unseen.
HELDOUT_CATEGORIES: tuple[str, ...] = (
    "Answerability Classification",
    "Cause Effect Classification",
    "Coreference Resolution",
    "Data to Text",
    "Dialogue Act Recognition",
    "Grammar Error Correction",
    "Keyword Tagging",
    "Overlap Extraction",
    "Question Rewriting",
    "Textual Entailment",
    "Title Generation",
    "Word Analogy",
)

# Upstream datasets built adversarially against models (matched as whole words in "Source").
ADVERSARIAL_SOURCES: tuple[str, ...] = ("adversarial_qa", "adversarialqa", "anli", "adversarial nli")


@dataclass(frozen=True)
class SNIFilters:
    """Which SNI tasks to keep.

    * ``english_only``: drop tasks whose ``Input_language``, ``Output_language`` or
      ``Instruction_language`` lists anything but ``"English"`` (missing keys pass);
    * ``exclude_categories``: drop tasks with a category equal to, or under (``"A -> B"`` under ``"A"``), one of these;
    * ``exclude_domains``: the same for ``Domains``;
    * ``exclude_sources``: drop tasks whose ``Source`` contains one of these as a whole word (case-insensitive);
    * ``min_instances``: drop tasks with fewer instances.
    """

    english_only: bool = True
    exclude_categories: tuple[str, ...] = ()
    exclude_domains: tuple[str, ...] = ()
    exclude_sources: tuple[str, ...] = ()
    min_instances: int = 0

    def merged(self, other: SNIFilters) -> SNIFilters:
        """Union of the exclusion lists; the stricter of ``english_only`` / ``min_instances``."""
        return SNIFilters(
            english_only=self.english_only or other.english_only,
            exclude_categories=tuple(dict.fromkeys(self.exclude_categories + other.exclude_categories)),
            exclude_domains=tuple(dict.fromkeys(self.exclude_domains + other.exclude_domains)),
            exclude_sources=tuple(dict.fromkeys(self.exclude_sources + other.exclude_sources)),
            min_instances=max(self.min_instances, other.min_instances),
        )

    def rejection(self, task: Task) -> tuple[str, str] | None:
        """``(field, reason)`` when the task is filtered out, else ``None``."""
        if self.english_only:
            for key, langs in (
                ("Input_language", task.input_language),
                ("Output_language", task.output_language),
                ("Instruction_language", tuple(task.metadata.get("instruction_language", ()))),
            ):
                if any(lang != "English" for lang in langs):
                    return key, f"not English ({list(langs)}) and english_only is set"
        for key, values, excluded in (
            ("Categories", task.clusters, self.exclude_categories),
            ("Domains", task.domains, self.exclude_domains),
        ):
            hit = [v for v in values if any(v == e or v.startswith(f"{e} -> ") for e in excluded)]
            if hit:
                return key, f"excluded {key.lower()} {hit}"
        for source in task.sources:
            hit = [e for e in self.exclude_sources if _word_match(e, source)]
            if hit:
                return "Source", f"excluded source {source!r} (matches {hit})"
        if task.n_instances < self.min_instances:
            return "Instances", f"{task.n_instances} instances < min_instances={self.min_instances}"
        return None


def _word_match(word: str, text: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(word.lower())}(?![a-z0-9])", text.lower()) is not None


PRESETS: dict[str, SNIFilters] = {
    # Our reading of Mueller et al.'s SNI setup: English only, SNI's held-out categories kept out of
    # training, adversarially collected sources dropped.  A preset, not a quotation: edit freely.
    "mueller": SNIFilters(
        english_only=True,
        exclude_categories=HELDOUT_CATEGORIES,
        exclude_sources=ADVERSARIAL_SOURCES,
    ),
}


def _as_list(value: Any, *, file: str, task: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TaskError(f"expected a string or a list of strings, got {type(value).__name__}", file=file, task=task, field=key)


def _example(raw: Any, *, file: str, task: str, key: str) -> Example:
    if not isinstance(raw, dict) or "input" not in raw or "output" not in raw:
        raise TaskError("an example must be an object with 'input' and 'output'", file=file, task=task, field=key)
    output = raw["output"]
    if isinstance(output, list):
        output = output[0] if output else ""
    return Example(input=str(raw["input"]), output=str(output), explanation=str(raw.get("explanation") or ""))


def _instance(raw: Any, index: int, *, file: str, task: str) -> Instance:
    key = f"Instances[{index}]"
    if not isinstance(raw, dict):
        raise TaskError("an instance must be an object", file=file, task=task, field=key)
    for name in ("input", "output"):
        if name not in raw:
            raise TaskError(f"instance has no {name!r}", file=file, task=task, field=f"{key}.{name}")
    if not isinstance(raw["input"], str):
        raise TaskError("instance input must be a string", file=file, task=task, field=f"{key}.input")
    outputs = _as_list(raw["output"], file=file, task=task, key=f"{key}.output")
    if not outputs:
        raise TaskError("instance has an empty output list", file=file, task=task, field=f"{key}.output")
    return Instance(id=str(raw.get("id") or f"{task}-{index}"), input=raw["input"], outputs=tuple(outputs))


def parse_sni_task(data: Any, *, name: str, file: str = "") -> Task:
    """One SNI task from its decoded JSON ``data``; bad data raises :class:`TaskError` naming file, task and field."""
    if not isinstance(data, dict):
        raise TaskError(f"top level must be a JSON object, got {type(data).__name__}", file=file, task=name)
    for key in ("Definition", "Instances"):
        if key not in data:
            raise TaskError(f"missing required key {key!r}", file=file, task=name, field=key)
    definitions = _as_list(data["Definition"], file=file, task=name, key="Definition")
    if not definitions or not definitions[0].strip():
        raise TaskError("empty Definition", file=file, task=name, field="Definition")
    raw_instances = data["Instances"]
    if not isinstance(raw_instances, list):
        raise TaskError("Instances must be a list", file=file, task=name, field="Instances")
    if not raw_instances:
        raise TaskError("empty instance list", file=file, task=name, field="Instances")
    instances = [_instance(raw, i, file=file, task=name) for i, raw in enumerate(raw_instances)]
    seen_ids: set[str] = set()
    for i, inst in enumerate(instances):
        if inst.id in seen_ids:
            raise TaskError(f"duplicate instance id {inst.id!r}", file=file, task=name, field=f"Instances[{i}].id")
        seen_ids.add(inst.id)

    def examples(key: str) -> list[Example]:
        raw = data.get(key) or []
        if not isinstance(raw, list):
            raise TaskError(f"{key} must be a list", file=file, task=name, field=key)
        return [_example(r, file=file, task=name, key=f"{key}[{i}]") for i, r in enumerate(raw)]

    def strings(key: str) -> list[str]:
        return _as_list(data.get(key), file=file, task=name, key=key)

    metadata: dict[str, Any] = {
        "file": file,
        "contributors": strings("Contributors"),
        "urls": strings("URL"),
        "reasoning": strings("Reasoning"),
        "instance_license": strings("Instance License"),
        "instruction_language": strings("Instruction_language"),
    }
    if len(definitions) > 1:
        metadata["definitions"] = definitions
    return Task(
        name=name,
        instances=tuple(instances),
        clusters=tuple(strings("Categories")),
        definition=definitions[0],
        positive_examples=tuple(examples("Positive Examples")),
        negative_examples=tuple(examples("Negative Examples")),
        domains=tuple(strings("Domains")),
        source="sni",
        sources=tuple(strings("Source")),
        input_language=tuple(strings("Input_language")),
        output_language=tuple(strings("Output_language")),
        metadata=metadata,
    )


def read_sni_task(path: str | Path) -> Task:
    """Read and parse one task file; malformed or truncated JSON raises :class:`TaskError` with the position."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TaskError(f"cannot read task file: {err}", file=str(path), task=path.stem) from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise TaskError(
            f"malformed or truncated JSON at line {err.lineno}, column {err.colno}: {err.msg}",
            file=str(path),
            task=path.stem,
            field="json",
        ) from err
    return parse_sni_task(data, name=path.stem, file=str(path))


@dataclass(frozen=True)
class SNILayout:
    """Where the task files and split lists of an SNI folder lie."""

    task_dir: Path
    split_dir: Path | None
    files: tuple[Path, ...] = field(default=())


def sni_layout(path: str | Path, split: str = "default") -> SNILayout:
    """Find task files and split lists: ``PATH/tasks`` + ``PATH/splits/<split>``, else ``PATH`` itself."""
    root = Path(path).expanduser()
    if root.is_file():
        return SNILayout(task_dir=root.parent, split_dir=None, files=(root,))
    if not root.is_dir():
        raise TaskError("SNI path does not exist", file=str(root), field="path")
    if (root / "tasks").is_dir():
        task_dir, split_dir = root / "tasks", root / "splits" / split
    else:
        task_dir, split_dir = root, root
    has_lists = (split_dir / "train_tasks.txt").is_file() or (split_dir / "test_tasks.txt").is_file()
    return SNILayout(task_dir=task_dir, split_dir=split_dir if has_lists else None,
                     files=tuple(sorted(task_dir.glob("*.json"))))


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


@register_source("sni")
def load_sni(
    path: str | None,
    *,
    tasks: Sequence[str] | None = None,
    preset: str | None = None,
    english_only: bool = True,
    exclude_categories: Iterable[str] = (),
    exclude_domains: Iterable[str] = (),
    exclude_sources: Iterable[str] = (),
    min_instances: int = 0,
    split: str = "default",
    skip_bad: bool = False,
    n_instances: int | None = None,
    seed: int = 0,
) -> TaskSuite:
    """Load SNI tasks from ``path``; see the module docstring for the order of operations."""
    if not path:
        raise TaskError("the sni source needs a path: 'sni:PATH'", field="spec")
    layout = sni_layout(path, split)
    filters = SNIFilters(
        english_only=english_only,
        exclude_categories=tuple(exclude_categories),
        exclude_domains=tuple(exclude_domains),
        exclude_sources=tuple(exclude_sources),
        min_instances=min_instances,
    )
    if preset is not None:
        if preset not in PRESETS:
            raise TaskError(f"unknown SNI preset {preset!r}; known: {sorted(PRESETS)}", field="preset")
        filters = PRESETS[preset].merged(filters)

    files = list(layout.files)
    if tasks is not None:
        by_name = {f.stem: f for f in files}
        missing = [t for t in tasks if t not in by_name]
        if missing:
            raise TaskError(f"no task file for {missing} in {str(layout.task_dir)!r}",
                            file=str(layout.task_dir / f"{missing[0]}.json"), task=missing[0], field="tasks")
        files = [by_name[t] for t in tasks]
    if not files:
        raise TaskError("no task JSON files found", file=str(layout.task_dir), field="path")

    parsed: list[Task] = []
    bad: list[TaskError] = []
    for file in files:
        try:
            parsed.append(read_sni_task(file))
        except TaskError as err:
            bad.append(err)
    if bad:
        listing = "\n".join(f"  - {err}" for err in bad)  # each error names its own file, task and field
        if not skip_bad:
            if len(bad) == 1:
                raise bad[0]
            error = TaskError(f"{len(bad)} bad SNI task file(s) of {len(files)}:\n{listing}")
            error.file, error.task, error.field = bad[0].file, bad[0].task, bad[0].field
            raise error
        warnings.warn(f"skipped {len(bad)} bad SNI task file(s) of {len(files)}:\n{listing}", stacklevel=2)
    dropped = [Dropped(task=err.task or "?", reason=f"bad task file skipped (skip_bad): {err}", field=err.field,
                       file=err.file) for err in bad]

    if layout.split_dir is not None:
        train_list = _read_list(layout.split_dir / "train_tasks.txt")
        test_list = _read_list(layout.split_dir / "test_tasks.txt")
        parsed = [_with_split(t, train_list, test_list) for t in parsed]

    kept = []
    filtered: list[Dropped] = []
    for task in parsed:
        rejection = filters.rejection(task)
        if rejection is None:
            kept.append(task)
            continue
        key, reason = rejection
        if tasks is not None:
            raise TaskError(f"task asked for by name is filtered out: {reason}",
                            file=task.metadata.get("file"), task=task.name, field=key)
        filtered.append(Dropped(task=task.name, reason=f"filtered out: {reason}", field=key,
                                file=task.metadata.get("file")))
    if filtered:
        shown = "\n".join(f"  - {d}" for d in filtered[:20]) + ("\n  - ..." if len(filtered) > 20 else "")
        warnings.warn(f"the SNI filters dropped {len(filtered)} of {len(parsed)} task(s), {len(kept)} kept:\n{shown}",
                      stacklevel=2)
    if n_instances is not None:
        kept = [cap_instances(t, n_instances, seed) for t in kept]
    return TaskSuite(name=f"sni:{path}", tasks=tuple(kept), dropped=tuple(dropped + filtered))


def _with_split(task: Task, train_list: set[str], test_list: set[str]) -> Task:
    split = "unseen" if task.name in test_list else "seen" if task.name in train_list else None
    if split is None:
        return task
    return replace(task, metadata={**task.metadata, "split": split})
