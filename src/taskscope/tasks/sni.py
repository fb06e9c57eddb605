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
   synthetic tasks, excluded categories / domains / sources, minimum instance count, and by role (a
   preset with ``unseen_categories`` sets ``metadata["split"]`` from the categories): training-only
   domain / source exclusions, the unseen-only instance minimum.  A task asked for by name
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

# Mueller, Dredze and Andrews' selection (section 3 of the paper), as far as it could be reconstructed from the
# paper's text.  Attested: English tasks only, no synthetic tasks, SNI's evaluation categories held out and
# evaluated (the paper reports 11 unseen categories; SNI names 12 - which one drops is not stated, so all 12 are
# held out and the > 140-instance rule decides), twelve held-out *domains* and six adversarially collected
# *sources* excluded from training, > 140 instances (100 test + 40 few-shot) required of unseen tasks only.
# Paper counts: 619 seen tasks (58 categories), 93 unseen (11 categories).
PAPER_COUNTS: dict[str, int] = {"seen": 619, "unseen": 93, "seen_categories": 58, "unseen_categories": 11}

# The six adversarial sources (matched as whole words in "Source"; two spellings of the first two).
ADVERSARIAL_SOURCES: tuple[str, ...] = ("adversarial_qa", "adversarialqa", "anli", "adversarial nli",
                                        "paws", "hans", "hellaswag", "codah")

# The paper excludes twelve domains from training; only "Twitter" could be reconstructed with confidence, so the
# list holds that one and the selection report says so.  Add the others with ``train_exclude_domains``.
HELDOUT_DOMAINS: tuple[str, ...] = ("Twitter",)

SYNTHETIC_SOURCE = "synthetic"  # SNI marks programmatically generated tasks with this Source word


@dataclass(frozen=True)
class SNIFilters:
    """Which SNI tasks to keep, and (with ``unseen_categories``) which are unseen.

    Applied to every task:

    * ``english_only``: drop tasks whose ``Input_language``, ``Output_language`` or
      ``Instruction_language`` lists anything but ``"English"`` (missing keys pass);
    * ``exclude_synthetic``: drop tasks whose ``Source`` has the word ``"synthetic"``;
    * ``exclude_categories``: drop tasks with a category equal to, or under (``"A -> B"`` under ``"A"``), one of these;
    * ``exclude_domains``: the same for ``Domains``;
    * ``exclude_sources``: drop tasks whose ``Source`` contains one of these as a whole word (case-insensitive);
    * ``min_instances``: drop tasks with fewer instances.

    By role (:meth:`role`: ``unseen`` when a category is in or under ``unseen_categories``, else ``seen``;
    without ``unseen_categories`` the split lists' ``metadata["split"]``):

    * seen (training) tasks only: ``train_exclude_domains`` (a domain *path component* equal to one, so
      ``"Social Media -> Twitter"`` matches ``"Twitter"``) and ``train_exclude_sources``;
    * unseen (evaluation) tasks only: ``unseen_min_instances``.
    """

    english_only: bool = True
    exclude_categories: tuple[str, ...] = ()
    exclude_domains: tuple[str, ...] = ()
    exclude_sources: tuple[str, ...] = ()
    min_instances: int = 0
    exclude_synthetic: bool = False
    unseen_categories: tuple[str, ...] = ()
    train_exclude_domains: tuple[str, ...] = ()
    train_exclude_sources: tuple[str, ...] = ()
    unseen_min_instances: int = 0

    def merged(self, other: SNIFilters) -> SNIFilters:
        """Union of the lists; the stricter of the flags and minimums."""

        def union(name: str) -> tuple[str, ...]:
            return tuple(dict.fromkeys(getattr(self, name) + getattr(other, name)))

        return SNIFilters(
            english_only=self.english_only or other.english_only,
            exclude_categories=union("exclude_categories"),
            exclude_domains=union("exclude_domains"),
            exclude_sources=union("exclude_sources"),
            min_instances=max(self.min_instances, other.min_instances),
            exclude_synthetic=self.exclude_synthetic or other.exclude_synthetic,
            unseen_categories=union("unseen_categories"),
            train_exclude_domains=union("train_exclude_domains"),
            train_exclude_sources=union("train_exclude_sources"),
            unseen_min_instances=max(self.unseen_min_instances, other.unseen_min_instances),
        )

    def role(self, task: Task) -> str | None:
        """``"seen"`` / ``"unseen"`` by ``unseen_categories`` when given, else the task's ``metadata["split"]``."""
        if self.unseen_categories:
            return "unseen" if _under(task.clusters, self.unseen_categories) else "seen"
        return task.metadata.get("split")

    def with_role(self, task: Task) -> Task:
        """The task with ``metadata["split"]`` set by :meth:`role` (unchanged without ``unseen_categories``)."""
        if not self.unseen_categories:
            return task
        return replace(task, metadata={**task.metadata, "split": self.role(task)})

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
        if self.exclude_synthetic and any(_word_match(SYNTHETIC_SOURCE, s) for s in task.sources):
            return "Source", f"synthetic task (Source {list(task.sources)}) and exclude_synthetic is set"
        for key, values, excluded in (
            ("Categories", task.clusters, self.exclude_categories),
            ("Domains", task.domains, self.exclude_domains),
        ):
            hit = [v for v in values if _under((v,), excluded)]
            if hit:
                return key, f"excluded {key.lower()} {hit}"
        for source in task.sources:
            hit = [e for e in self.exclude_sources if _word_match(e, source)]
            if hit:
                return "Source", f"excluded source {source!r} (matches {hit})"
        if task.n_instances < self.min_instances:
            return "Instances", f"{task.n_instances} instances < min_instances={self.min_instances}"
        role = self.role(task)
        if role == "seen":
            hit = [d for d in task.domains if any(part.strip() in self.train_exclude_domains for part in d.split("->"))]
            if hit:
                return "Domains", f"held-out domain {hit} excluded from training (train_exclude_domains)"
            for source in task.sources:
                hit = [e for e in self.train_exclude_sources if _word_match(e, source)]
                if hit:
                    return "Source", f"adversarial source {source!r} (matches {hit}) excluded from training"
        if role == "unseen" and task.n_instances < self.unseen_min_instances:
            return "Instances", (f"unseen task with {task.n_instances} instances < unseen_min_instances="
                                 f"{self.unseen_min_instances}")
        return None


def _under(values: Iterable[str], names: Iterable[str]) -> bool:
    """True when a value equals one of ``names`` or lies under it (``"A -> B"`` under ``"A"``)."""
    names = tuple(names)
    return any(v == n or v.startswith(f"{n} -> ") for v in values for n in names)


def _word_match(word: str, text: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(word.lower())}(?![a-z0-9])", text.lower()) is not None


PRESETS: dict[str, SNIFilters] = {
    # Mueller et al.'s selection as reconstructed above (see docs/tasks.md for what is attested): English, no
    # synthetic tasks; SNI's evaluation categories are the unseen tasks, with > 140 instances; held-out domains
    # and adversarial sources are kept out of training only.  Seen / unseen come from the categories, not from
    # SNI's split lists.
    "mueller": SNIFilters(
        english_only=True,
        exclude_synthetic=True,
        unseen_categories=HELDOUT_CATEGORIES,
        train_exclude_domains=HELDOUT_DOMAINS,
        train_exclude_sources=ADVERSARIAL_SOURCES,
        unseen_min_instances=141,
    ),
}


@dataclass(frozen=True)
class SelectionReport:
    """What a preset makes of an SNI folder: the counts beside the paper's, and every task that differs."""

    preset: str
    counts: dict[str, int]
    paper: dict[str, int]
    dropped: tuple[dict[str, str], ...]   # task, role, field, reason
    moved: tuple[dict[str, str], ...]     # task, split list, preset role: tasks whose role differs from SNI's lists
    notes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "counts": self.counts, "paper": self.paper, "dropped": list(self.dropped),
                "moved": list(self.moved), "notes": list(self.notes)}

    def text(self) -> str:
        lines = [f"SNI selection, preset {self.preset!r}", f"{'':20}{'ours':>8}{'paper':>8}"]
        lines += [f"{key:20}{self.counts[key]:>8}{self.paper.get(key, 0):>8}" for key in self.counts]
        lines += ["", f"dropped ({len(self.dropped)}):"]
        lines += [f"  {d['task']} [{d['role']}] {d['field']}: {d['reason']}" for d in self.dropped]
        lines += ["", f"role differs from the SNI split lists ({len(self.moved)}):"]
        lines += [f"  {m['task']}: split list {m['split_list']}, preset {m['role']}" for m in self.moved]
        return "\n".join(lines + [""] + [f"note: {n}" for n in self.notes])


def selection_report(path: str | Path, preset: str = "mueller", *, split: str = "default") -> SelectionReport:
    """Apply preset ``preset`` to the SNI folder ``path`` and report seen / unseen task and category counts beside
    the paper's (:data:`PAPER_COUNTS`), every dropped task with its reason and every task whose role differs
    from SNI's split lists."""
    if preset not in PRESETS:
        raise TaskError(f"unknown SNI preset {preset!r}; known: {sorted(PRESETS)}", field="preset")
    filters = PRESETS[preset]
    everything = load_sni(str(path), english_only=False, split=split, skip_bad=True)
    kept: dict[str, list[Task]] = {"seen": [], "unseen": []}
    dropped, moved = [], []
    for task in everything:
        listed = task.metadata.get("split")
        task = filters.with_role(task)
        role = filters.role(task) or "seen"
        rejection = filters.rejection(task)
        if rejection is not None:
            dropped.append({"task": task.name, "role": role, "field": rejection[0], "reason": rejection[1]})
            continue
        kept[role].append(task)
        if listed is not None and listed != role:
            moved.append({"task": task.name, "split_list": listed, "role": role})

    def categories(tasks: list[Task], among: tuple[str, ...] = ()) -> int:
        names = {c for t in tasks for c in t.clusters}
        return len({n for n in names if _under((n,), among)}) if among else len(names)

    counts = {"seen": len(kept["seen"]), "unseen": len(kept["unseen"]),
              "seen_categories": categories(kept["seen"]),
              "unseen_categories": categories(kept["unseen"], filters.unseen_categories)}
    notes = (f"{len(everything)} task files read from {str(path)!r}",
             f"held-out domains excluded from training: {list(filters.train_exclude_domains)} "
             f"({len(filters.train_exclude_domains)} of the paper's 12; the rest could not be reconstructed)",
             "unseen categories: SNI's 12 evaluation categories; the paper reports 11 after its filters")
    return SelectionReport(preset, counts, dict(PAPER_COUNTS), tuple(dropped), tuple(moved), notes)


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
    for task in map(filters.with_role, parsed):
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
