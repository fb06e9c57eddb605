"""The ``taskscope`` command line (Typer + rich).  Thin: the logic lives in the packages it calls.

Command groups: ``tasks`` (list / show / export task suites), ``config validate``, ``run``.  Further groups are
attached at the end of this file.

Errors: every command runs under :func:`user_errors`, which prints an error as ``error: ...`` lines (one per
problem, naming the file and field) and exits 1; the traceback is shown only with the global ``--debug``
(``taskscope --debug run ...``).
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from taskscope.pipeline.lock import RunLockedError
from taskscope.tasks import (
    FORMAT_KINDS,
    PromptFormat,
    TaskError,
    TaskSuite,
    format_task,
    label_tokens,
    load_suite,
)
from taskscope.tasks.formats import example_record, export_jsonl

app = typer.Typer(name="taskscope", help="Multi-task transfer and layer-wise similarity in instruction-tuned LMs.",
                  no_args_is_help=True, add_completion=False)
tasks_app = typer.Typer(help="Inspect task suites: sni:PATH, templated:PATH, builtin.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
config_app = typer.Typer(help="Check study configs before running them.", no_args_is_help=True)
app.add_typer(config_app, name="config")

console = Console()
err_console = Console(stderr=True)
_OPTIONS = {"debug": False}


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False,
) -> None:
    _OPTIONS["debug"] = debug


def _message(err: BaseException) -> str:
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


def error_lines(message: str) -> list[str]:
    """One self-contained line per problem: a ``header:`` followed by indented items (``ConfigError``'s and the SNI
    loader's lists) becomes ``header: item`` per item, so every line names the file and the field."""
    lines = [line for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":") and all(line.startswith(" ") for line in lines[1:]):
        header = lines[0][:-1]
        return [f"{header}: {line.strip().removeprefix('- ')}" for line in lines[1:]]
    return lines


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``command``; an exception becomes ``error: ...`` lines on stderr and exit code 1 (``--debug``: raise).

    Bad input (``ValueError`` and its kinds: ConfigError, TaskError, ModelSpecError, ...; ``OSError``;
    ``KeyError``) and a run folder in use (``RunLockedError``) print their message only; anything else also
    says how to see the traceback.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as err:
            if _OPTIONS["debug"]:
                raise
            known = isinstance(err, (ValueError, OSError, KeyError, RunLockedError))
            hint = "" if known else f" ({type(err).__name__}; rerun with --debug for the traceback)"
            for line in error_lines(f"{_message(err)}{hint}") or [type(err).__name__]:
                err_console.print(Text(f"error: {line}", style="red"), soft_wrap=True)
            raise typer.Exit(code=1) from None

    return wrapper

Seed = Annotated[int, typer.Option("--seed", help="Seed for instance draws and template sampling.")]
SkipBad = Annotated[bool, typer.Option("--skip-bad", help="Skip bad task files (sni) or bad records (templated: "
                                       "on_bad_record=skip) with a warning instead of failing.")]
NInstances = Annotated[int | None, typer.Option("--n-instances", help="Cap every task to N instances (seeded draw).")]
Kind = Annotated[str, typer.Option("--format", help=f"Task context: {', '.join(FORMAT_KINDS)}.")]
NExemplars = Annotated[int, typer.Option("--n-exemplars", help="Positive exemplars for exemplar formats.")]
TaskName = Annotated[bool, typer.Option("--task-name/--no-task-name", help="Start prompts with the task name.")]
Spec = Annotated[str, typer.Argument(help="Suite spec, e.g. sni:/data/sni, templated:spec.yaml, builtin.")]
TemplatePolicy = Annotated[str, typer.Option("--template-policy", help="Templated tasks: fixed, cycle or sample.")]


def _fail(err: Exception) -> typer.Exit:
    err_console.print(Text(f"error: {_message(err)}", style="red"), soft_wrap=True)
    return typer.Exit(code=1)


def _load(spec: str, seed: int, skip_bad: bool, n_instances: int | None) -> TaskSuite:
    """Load a suite; its warnings (dropped tasks, skipped files or records) print as ``warning: ...`` lines."""
    from taskscope.tasks.registry import parse_spec

    options: dict[str, Any] = {"seed": seed}
    if skip_bad:  # bad files (sni) or bad records (templated) are skipped, each source in its own terms
        options.update({"on_bad_record": "skip"} if parse_spec(spec)[0] == "templated" else {"skip_bad": True})
    if n_instances is not None:
        options["n_instances"] = n_instances
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            suite = load_suite(spec, **options)
    except (TaskError, TypeError) as err:
        raise _fail(err) from err
    for warning in caught:
        for line in error_lines(str(warning.message)):
            err_console.print(Text(f"warning: {line}", style="yellow"), soft_wrap=True)
    return suite


def _format(kind: str, n_exemplars: int, task_name: bool, policy: str) -> PromptFormat:
    try:
        return PromptFormat(kind=kind, n_exemplars=n_exemplars, add_task_name=task_name, template_policy=policy)
    except ValueError as err:
        raise _fail(err) from err


@tasks_app.command("list")
@user_errors
def tasks_list(
    spec: Spec,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array, one object per task.")] = False,
    seed: Seed = 0,
    skip_bad: SkipBad = False,
    n_instances: NInstances = None,
) -> None:
    """List the tasks of a suite with their cluster, categories and instance counts."""
    suite = _load(spec, seed, skip_bad, n_instances)
    rows = [task.summary() for task in suite]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    table = Table(title=f"{suite.name}: {len(suite)} tasks, {len(suite.clusters)} clusters")
    for column in ("name", "cluster", "categories", "n_instances", "split"):
        table.add_column(column, justify="right" if column == "n_instances" else "left")
    for row in rows:
        table.add_row(row["name"], row["cluster"], "; ".join(row["categories"]), str(row["n_instances"]),
                      row["split"] or "")
    console.print(table)


@tasks_app.command("show")
@user_errors
def tasks_show(
    spec: Spec,
    name: Annotated[str, typer.Argument(help="Task name.")],
    kind: Kind = "definition_exemplars",
    n: Annotated[int, typer.Option("--n", help="Number of instances to show (the task's first N).")] = 3,
    n_exemplars: NExemplars = 2,
    task_name: TaskName = False,
    template_policy: TemplatePolicy = "fixed",
    tokenizer: Annotated[str | None, typer.Option("--tokenizer", help="Local tokenizer folder: show trained tokens.")] = None,
    seed: Seed = 0,
    skip_bad: SkipBad = False,
) -> None:
    """Show formatted prompts and targets exactly as a model sees them."""
    suite = _load(spec, seed, skip_bad, None)
    try:
        task = suite[name]
    except KeyError as err:
        raise _fail(err) from err
    fmt = _format(kind, n_exemplars, task_name, template_policy)
    examples = format_task(task, task.instances[:n], fmt, seed=seed)
    tok = None
    if tokenizer is not None:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
        except (OSError, ValueError) as err:
            raise _fail(err) from err
    for example in examples:
        console.rule(Text(f"{example.task} / {example.instance_id} / template {example.template_index}"))
        console.print(Text("PROMPT", style="bold"))
        console.print(Text(example.prompt), soft_wrap=True)
        console.print(Text("TARGETS", style="bold"))
        for target in example.targets:
            console.print(Text(repr(target)), soft_wrap=True)
        if tok is not None:
            table = Table("#", "token id", "token", "trained")
            for i, view in enumerate(label_tokens(tok, example)):
                table.add_row(str(i), str(view.token_id), Text(repr(view.text)), "yes" if view.trained else "no",
                              style="green" if view.trained else None)
            console.print(table)


@tasks_app.command("export")
@user_errors
def tasks_export(
    spec: Spec,
    out: Annotated[Path, typer.Argument(help="Output JSONL file.")],
    kind: Kind = "definition_exemplars",
    n_exemplars: NExemplars = 2,
    task_name: TaskName = False,
    template_policy: TemplatePolicy = "fixed",
    seed: Seed = 0,
    skip_bad: SkipBad = False,
    n_instances: NInstances = None,
) -> None:
    """Write every formatted instance of a suite to JSONL (one object per instance)."""
    suite = _load(spec, seed, skip_bad, n_instances)
    fmt = _format(kind, n_exemplars, task_name, template_policy)
    records = [example_record(ex, cluster=task.cluster, format=fmt.kind)
               for task in suite for ex in format_task(task, None, fmt, seed=seed)]
    count = export_jsonl(records, out)
    err_console.print(f"wrote {count} examples of {len(suite)} tasks to {out}")


@config_app.command("validate")
@user_errors
def config_validate(
    config: Annotated[Path, typer.Argument(help="Study YAML (MOSSA or transfer), or a preset name.")],
    executor: Annotated[str, typer.Option(help="The executor the run would use: local | ray.")] = "local",
    tasks: Annotated[bool, typer.Option("--tasks/--no-tasks", help="Also load the task source and check task, "
                                        "cluster and held-out names against it.")] = True,
) -> None:
    """Check every field, plug-in name, model spec, path and task name of a study config; run nothing."""
    from taskscope.pipeline.transfer_config import TransferStudyConfig, load_study_config
    from taskscope.pipeline.validate import validate_study

    study = load_study_config(config)
    validate_study(study, source=str(config), executor=executor, load_tasks=tasks)
    kind = "transfer" if isinstance(study, TransferStudyConfig) else "MOSSA"
    console.print(f"ok: {config} is a valid {kind} study config (name {study.name!r}, model {study.model!r})")


# --- further command groups (run, models) are attached below this line --------------------------

from taskscope.pipeline.run import run_command  # noqa: E402  (the pipeline is the heavy import)

app.command(
    "run",
    help="Run (or resume) a study from a YAML config; with no config, the MOSSA quickstart on the "
    "embedded Gemma 3 270M and the builtin tasks. Finished stages are reused.",
)(user_errors(run_command))


@app.command("clean")
@user_errors
def clean(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    yes: Annotated[bool, typer.Option("--yes", help="Delete (without it: only list what would go).")] = False,
) -> None:
    """Remove stage folders the last successful run of RUN no longer uses (a dry run unless --yes)."""
    from taskscope.pipeline.run import clean_run

    sizes = clean_run(run, delete=yes)
    verb = "removed" if yes else "would remove"
    for folder, size in sizes.items():
        console.print(f"{verb} {folder} ({size / 1e6:.1f} MB)")
    total = sum(sizes.values()) / 1e6
    console.print(f"{verb} {len(sizes)} superseded stage folder(s), {total:.1f} MB"
                  + ("" if yes or not sizes else "; run again with --yes to delete them"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
