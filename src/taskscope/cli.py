"""The ``taskscope`` command line (Typer + rich).  Thin: the logic lives in the packages it calls.

Commands: ``tasks`` (list / show / export task suites), ``configs list``, ``config show`` / ``config validate``,
``run``, ``report`` (rebuild a run's report), ``compare`` (two runs), ``clean``; ``--version``.  The pipeline
commands are attached at the end of this file (the pipeline is the heavy import).

Errors: every command runs under :func:`user_errors`, which prints an error as ``error: ...`` lines (one per
problem, naming the file and field) and exits 1; the traceback is shown only with the global ``--debug``
(``taskscope --debug run ...``).
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from taskscope.common.allocator import tune_allocator
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
config_app = typer.Typer(help="Show or check a study config before running it.", no_args_is_help=True)
app.add_typer(config_app, name="config")
configs_app = typer.Typer(help="The study presets: bundled, and those of installed study-kind plug-ins.",
                          no_args_is_help=True)
app.add_typer(configs_app, name="configs")

console = Console()
err_console = Console(stderr=True)
_OPTIONS = {"debug": False}


def _print_version(value: bool) -> None:
    if value:
        from taskscope import __version__

        typer.echo(f"taskscope {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the taskscope version and exit.")] = False,
) -> None:
    _OPTIONS["debug"] = debug
    _prepare_process()


def _prepare_process() -> None:
    """Process settings of the command, before any command imports torch or transformers: heap reuse for large
    temporaries (:func:`~taskscope.common.allocator.tune_allocator`), and no Hugging Face per-load tqdm bars
    ("Loading weights"), which would interleave with the command's own labelled progress bars (read when
    transformers is first imported; ``HF_HUB_DISABLE_PROGRESS_BARS=0`` keeps them)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    tune_allocator()


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
    wide: Annotated[bool, typer.Option("--wide", help="One line per task, however wide the terminal.")] = False,
    seed: Seed = 0,
    skip_bad: SkipBad = False,
    n_instances: NInstances = None,
) -> None:
    """List the tasks of a suite with their cluster, categories and instance counts.

    Task names are never cut: the name column is as wide as the longest name and the other columns wrap;
    ``--wide`` keeps every row on one line.
    """
    suite = _load(spec, seed, skip_bad, n_instances)
    rows = [task.summary() for task in suite]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    table = Table(title=f"{suite.name}: {len(suite)} tasks, {len(suite.clusters)} clusters")
    longest = max((len(row["name"]) for row in rows), default=4)
    table.add_column("name", no_wrap=True, min_width=longest)
    for column in ("cluster", "categories", "n_instances", "split"):
        table.add_column(column, justify="right" if column == "n_instances" else "left", overflow="fold",
                         no_wrap=wide)
    for row in rows:
        table.add_row(row["name"], row["cluster"], "; ".join(row["categories"]), str(row["n_instances"]),
                      row["split"] or "")
    # the name column never shrinks: the table is at least as wide as the names plus narrow folded columns
    # (wider than a narrow terminal, whose lines then wrap but keep every name whole)
    needed = table_width(rows) if wide else longest + 4 * 8 + 16
    console.print(table, width=max(console.width, needed), crop=False)


def table_width(rows: list[dict[str, Any]]) -> int:
    """The width ``tasks list --wide`` needs to keep every row on one line (borders and padding included)."""
    cells = [[row["name"], row["cluster"], "; ".join(row["categories"]), str(row["n_instances"]), row["split"] or ""]
             for row in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in
              enumerate(("name", "cluster", "categories", "n_instances", "split"))]
    return sum(widths) + 3 * len(widths) + 1


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
    tokenizer: Annotated[str | None, typer.Option("--tokenizer", help="Show trained tokens with this tokenizer: "
                         "a local folder or a model spec (embedded, tiny:llama, ...).")] = None,
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
    tok = _tokenizer(tokenizer) if tokenizer is not None else None
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


def _tokenizer(spec: str) -> Any:
    """A tokenizer from a local folder, ``embedded`` (the cached Gemma checkpoint, converted once) or any other
    model spec (``tiny:llama``: its model is built to get it)."""
    from taskscope.models.loading import load_tokenizer

    try:
        if Path(spec).expanduser().is_dir():
            return load_tokenizer(Path(spec).expanduser())
        if spec == "embedded":
            from taskscope.models.embedded import embedded_checkpoint

            return load_tokenizer(embedded_checkpoint())
        from taskscope.models import load_model

        return load_model(spec).tokenizer
    except (OSError, ValueError) as err:
        raise _fail(ValueError(f"--tokenizer {spec!r}: {_message(err)}")) from err


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


Overrides = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE", help="Set one config field, e.g. --set tasks.n_inputs=32 (repeatable; the value "
    "is YAML: 3, null, a flow list).")]
ConfigArg = Annotated[Path, typer.Argument(help="Study YAML (MOSSA or transfer), or a preset name "
                                           "(`taskscope configs list`).")]


@configs_app.command("list")
@user_errors
def configs_list() -> None:
    """The presets (bundled, and those of installed plug-in study kinds): use a name wherever a config path goes
    (`taskscope run tiny`)."""
    from taskscope.pipeline.config import presets

    table = Table("preset", "description", title="presets (taskscope config show NAME prints one)")
    table.columns[0].no_wrap = True
    for name, description in presets().items():
        table.add_row(name, description)
    console.print(table)


@config_app.command("show")
@user_errors
def config_show(config: ConfigArg, overrides: Overrides = None) -> None:
    """Print a study config resolved: every default filled in, relative paths resolved, --set applied (YAML).

    Required settings (``???``) still unset are kept and named on stderr.
    """
    from taskscope.pipeline.config import config_from_dict, dump_config, missing_settings, read_config_yaml

    path, data = read_config_yaml(config, overrides or [], allow_missing=True)
    typer.echo(dump_config(config_from_dict(data, str(path))), nl=False)
    for key in missing_settings(data):
        err_console.print(Text(f"warning: {path}: {key} is a required setting (???); set it with --set {key}=...",
                               style="yellow"), soft_wrap=True)


@config_app.command("validate")
@user_errors
def config_validate(
    config: ConfigArg,
    executor: Annotated[str, typer.Option(help="The executor the run would use: local | ray.")] = "local",
    tasks: Annotated[bool, typer.Option("--tasks/--no-tasks", help="Also load the task source and check task, "
                                        "cluster and held-out names against it.")] = True,
    overrides: Overrides = None,
) -> None:
    """Check every field, plug-in name, model spec, path and task name of a study config; run nothing."""
    from taskscope.pipeline.config import load_config
    from taskscope.pipeline.validate import validate_study

    study = load_config(config, overrides or [])
    validate_study(study, source=str(config), executor=executor, load_tasks=tasks)
    console.print(f"ok: {config} is a valid {study.study} study config (name {study.name!r}, model {study.model!r})")


# --- further command groups (run, models) are attached below this line --------------------------

from taskscope.pipeline.run import run_command  # noqa: E402  (the pipeline is the heavy import)

app.command(
    "run",
    help="Run (or resume) a study from a YAML config or a bundled preset name (`taskscope run tiny`); with no "
    "config, the MOSSA quickstart on the embedded Gemma 3 270M and the builtin tasks. Finished stages are reused. "
    "--set KEY=VALUE overrides a field.",
)(user_errors(run_command))


@app.command("report")
@user_errors
def report(
    run: Annotated[Path, typer.Argument(help="Run folder of a finished study (MOSSA or transfer).")],
    out: Annotated[Path | None, typer.Option("--out", help="Write report.html and figures/ here instead of "
                                             "into the run folder.")] = None,
) -> None:
    """Rebuild a run's report.html and figures from its stored tables (nothing is recomputed)."""
    from taskscope.pipeline.run import rebuild_report

    console.print(f"report: {rebuild_report(run, out)}")


@app.command("compare")
@user_errors
def compare(
    run_a: Annotated[Path, typer.Argument(help="Run folder A (a MOSSA study).")],
    run_b: Annotated[Path, typer.Argument(help="Run folder B, on the same tasks.")],
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: RUN_A/compare/<name of "
                                             "RUN_B>).")] = None,
) -> None:
    """Compare two MOSSA runs on the same tasks: layer curves per model side by side and B - A, as
    compare.csv, compare_tasks.csv and compare.html."""
    from taskscope.pipeline.run import compare_run_folders

    path = compare_run_folders(run_a, run_b, out)
    folder = path.parent
    console.print(f"comparison: {path}\ntables: compare.csv, compare_tasks.csv in {folder}")


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
