"""The one plug-in registry: generic behaviour over every family, and third-party plug-ins from entry points.

The plug-in test writes a tiny installed distribution (a package plus its ``.dist-info`` with
``entry_points.txt``) into a temporary folder on ``sys.path``: one new file each for a measure, a sampler and a
task source, and one registration line each (the entry point).  A MOSSA study then names all three in its
config and must use them: the measure's values in ``measures.csv`` equal a direct computation on the stored
states, the sampler's draws are in the training log, and the tasks are the source's.
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from taskscope.pipeline.executors import EXECUTORS
from taskscope.pipeline.kinds import STUDIES
from taskscope.registry import Registry, RegistryError
from taskscope.similarity import KERNELS, MEASURES
from taskscope.tasks.registry import SOURCES
from taskscope.train.samplers import SAMPLERS

FAMILIES = {"sources": SOURCES, "samplers": SAMPLERS, "measures": MEASURES, "kernels": KERNELS,
            "executors": EXECUTORS, "studies": STUDIES}
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_member_has_a_parameter_model_that_takes_its_defaults(family):
    registry = FAMILIES[family]
    assert len(registry) >= 2
    for name in registry:
        model = registry.params_model(name)
        model.model_validate({})  # every member is usable with its defaults
        assert not set(model.model_fields) & registry.reserved


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_unknown_names_and_unknown_parameters_are_one_line_errors(family):
    registry = FAMILIES[family]
    name = registry.names()[0]
    with pytest.raises(RegistryError, match=f"unknown {registry.kind} '{name}x'; did you mean '{name}'"):
        registry.lookup(name + "x")
    with pytest.raises(RegistryError, match=f"{registry.kind} '{name}': .*parameter 'no_such_parameter'"):
        registry.check_params(name, {"no_such_parameter": 1})


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_taken_name_cannot_be_registered_again(family):
    registry = FAMILIES[family]
    name = registry.names()[0]
    member = registry.lookup(name)
    with pytest.raises(RegistryError, match="already registered"):
        registry.add(name, type("Impostor", (), {}))
    registry.add(name, member)  # the same object again (a module imported twice) is fine
    assert registry.lookup(name) is member


def test_parameter_types_are_checked_from_the_constructor():
    registry: Registry = Registry("widget", entry_point_group="taskscope.test-widgets")

    @registry.register("knob")
    class Knob:
        def __init__(self, size: int, *, turns: float = 1.0, label: str | None = None) -> None: ...

    @registry.register("dial")
    class Dial(Knob):
        def __init__(self, *, colour: str = "red", **kwargs) -> None:
            super().__init__(1, **kwargs)

    assert Knob.name == "knob" and set(registry) == {"knob", "dial"}
    assert registry.check_params("knob", {"size": 2, "turns": 3}) == {"size": 2, "turns": 3}
    with pytest.raises(RegistryError, match="'knob': parameter 'turns': Input should be a valid number"):
        registry.check_params("knob", {"size": 2, "turns": "many"})
    with pytest.raises(RegistryError, match="'knob': parameter 'size': Field required"):
        registry.check_params("knob", {})
    # a subclass forwarding **kwargs inherits its parent's parameters
    assert set(registry.params_model("dial").model_fields) == {"colour", "size", "turns", "label"}


def test_cka_checks_its_kernel_arguments_against_the_kernel():
    assert MEASURES.check_params("cka", {"kernel": "rbf", "sigma_scale": 0.5})
    with pytest.raises(RegistryError, match="kernel 'rbf': parameter 'sigm'"):
        MEASURES.check_params("cka", {"kernel": "rbf", "sigm": 0.5})


# ------------------------------------------------------------------------------ a third-party plug-in package
PLUGIN_FILES = {
    "tsplug/__init__.py": "",
    # one file: a new measure (correlation of the two centred linear Gram matrices)
    "tsplug/gram_corr.py": '''
        import torch
        from taskscope.similarity import Measure

        class GramCorrelation(Measure):
            def compute(self, x, y):
                gx, gy = (m - m.mean(0) for m in (x, y))
                a, b = (g @ g.T for g in (gx, gy))
                a, b = a - a.mean(), b - b.mean()
                return float((a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()))
    ''',
    # one file: a new sampler (always the first task)
    "tsplug/first_task.py": '''
        import numpy as np
        from taskscope.train.samplers import TaskSampler

        class FirstTaskSampler(TaskSampler):
            def __init__(self, sizes, *, weight: float = 1.0, **kwargs):
                super().__init__(sizes, **kwargs)
                self.weight = weight

            def probabilities(self, step):
                p = np.zeros(self.num_tasks)
                p[0] = 1.0
                return p
    ''',
    # one file: a new task source (a subset of the builtin suite, renamed)
    "tsplug/subset.py": '''
        from dataclasses import replace
        from taskscope.tasks import load_suite
        from taskscope.tasks.core import TaskSuite

        def load_subset(path, *, clusters: list[str], n_instances: int = 48, seed: int = 0) -> TaskSuite:
            suite = load_suite("builtin", n_instances=n_instances, seed=seed, clusters=clusters)
            tasks = tuple(replace(task, name="plug_" + task.name) for task in suite.tasks)
            return TaskSuite(name="subset", tasks=tasks)
    ''',
    # the registration lines: one entry point per plug-in
    "tsplug-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: tsplug\nVersion: 0.1\n",
    "tsplug-0.1.dist-info/entry_points.txt": '''
        [taskscope.measures]
        gram_corr = tsplug.gram_corr:GramCorrelation

        [taskscope.samplers]
        first_task = tsplug.first_task:FirstTaskSampler

        [taskscope.sources]
        subset = tsplug.subset:load_subset
    ''',
}


def install_plugin(root: Path, files: dict[str, str], monkeypatch) -> Path:
    """Write a plug-in distribution (its files and ``.dist-info``) under ``root`` and put ``root`` on sys.path."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return root


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    root = install_plugin(tmp_path / "site", PLUGIN_FILES, monkeypatch)
    for registry in (MEASURES, SAMPLERS, SOURCES):
        registry.reload_plugins()
    yield root
    for registry, name in ((MEASURES, "gram_corr"), (SAMPLERS, "first_task"), (SOURCES, "subset")):
        registry.remove(name)
    for module in [m for m in sys.modules if m == "tsplug" or m.startswith("tsplug.")]:
        del sys.modules[module]


def test_plugins_from_entry_points_are_registered_and_validated(plugin_package):
    assert {"gram_corr"} <= set(MEASURES) and "first_task" in SAMPLERS and "subset" in SOURCES
    assert MEASURES.lookup("gram_corr").name == "gram_corr"
    with pytest.raises(RegistryError, match="'first_task': parameter 'weight'"):
        SAMPLERS.check_params("first_task", {"weight": "heavy"})
    with pytest.raises(RegistryError, match="'subset': parameter 'clusters': Field required"):
        SOURCES.check_params("subset", {})


def stage_dir(run, name: str) -> Path:
    return run.run_dir / run.stages[name]["folder"]


def test_a_study_uses_a_plugin_measure_sampler_and_source(plugin_package, tmp_path):
    from taskscope.pipeline import run_study
    from taskscope.pipeline.config import config_from_dict
    from taskscope.studies.mossa.extract import load_states

    data = yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text())
    data["tasks"] = {**data["tasks"], "source": "subset",
                     "options": {"clusters": ["arithmetic", "nli", "sentiment"], "n_instances": 48}}
    data["tasks"].pop("clusters")
    data["models"] = data["models"][:2]
    data["control_seeds"] = 1
    data["instruction_tuning"] = {**data["instruction_tuning"], "sampler": "first_task",
                                  "sampler_kwargs": {"weight": 2.0}, "log_every": 1}
    data["similarity"] = {**data["similarity"], "measures": ["gram_corr", {"name": "procrustes"}]}
    data["output_dir"] = str(tmp_path)
    run = run_study(config_from_dict(data), tmp_path / "run")

    measures = run.tables["measures"]
    tasks = sorted(measures["task"].unique())
    assert tasks and all(t.startswith("plug_") for t in tasks)  # the tasks came from the plug-in source
    assert set(measures["measure"]) == {"gram_corr", "procrustes"}

    # the plug-in measure's value equals a direct computation on the stored states of one pair
    extract_dir = stage_dir(run, "extract")
    task = tasks[0]
    model = torch.as_tensor(load_states(extract_dir, "exp-instruction_tuned")[task], dtype=torch.float64)
    control = torch.as_tensor(load_states(extract_dir, f"control-{task}")[task], dtype=torch.float64)
    layer = int(model.shape[0]) - 1
    gx, gy = (m - m.mean(0) for m in (model[layer], control[layer]))
    a, b = gx @ gx.T, gy @ gy.T
    a, b = a - a.mean(), b - b.mean()
    direct = float((a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()))
    row = measures[(measures.experimental_model == "instruction_tuned") & (measures.task == task)
                   & (measures.layer == layer) & (measures.measure == "gram_corr")]
    assert row["value"].item() == pytest.approx(direct, abs=1e-6)

    # the agreement table and its finding cover both measures and CKA
    agreement = run.tables["measure_agreement"]
    assert set(agreement["measure"]) == {"gram_corr", "procrustes", "cka[linear]"}
    findings = json.loads((run.run_dir / "findings.json").read_text())
    assert any(f["id"] == "M1" for f in findings["findings"])

    # the instruction tuning drew only the first task (the plug-in sampler's distribution)
    log_lines = [json.loads(line) for line in (stage_dir(run, "experimental") / "items" / "instruction_tuned" / "train"
                                                / "log.jsonl").read_text().splitlines() if line.strip()]
    draws = [rec["p"] for rec in log_lines if "p" in rec]
    assert draws and all(max(p.values()) == 1.0 and len({k for k, v in p.items() if v == 1.0}) == 1 for p in draws)
    assert len({next(k for k, v in p.items() if v == 1.0) for p in draws}) == 1


def test_a_plugin_cannot_take_a_builtin_name(tmp_path, monkeypatch):
    root = tmp_path / "site"
    (root / "clash").mkdir(parents=True)
    (root / "clash" / "__init__.py").write_text("class Impostor:\n    pass\n")
    (root / "clash-0.1.dist-info").mkdir()
    (root / "clash-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: clash\nVersion: 0.1\n")
    (root / "clash-0.1.dist-info" / "entry_points.txt").write_text("[taskscope.kernels]\nlinear = clash:Impostor\n")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    try:
        with pytest.raises(RegistryError, match="kernel 'linear' is already registered"):
            KERNELS.reload_plugins()
    finally:
        sys.modules.pop("clash", None)
    assert KERNELS.lookup("linear").__name__ != "Impostor"


# ------------------------------------------------------------------------------ a third-party study kind
TOY_FILES = {
    "toyplug/__init__.py": "",
    # one file: a one-stage study kind whose stage writes a table of squares
    "toyplug/toy.py": '''
        from pathlib import Path
        from typing import Literal

        import pandas as pd
        from pydantic import Field

        from taskscope.common.files import atomic_write_text
        from taskscope.pipeline.config import StudyConfigBase
        from taskscope.pipeline.kinds import StudyKind
        from taskscope.pipeline.stages import Stage
        from taskscope.pipeline.view import RunView


        class ToyConfig(StudyConfigBase):
            study: Literal["toy"] = "toy"
            n_rows: int = Field(3, ge=1)


        def run_squares(ctx):
            rows = pd.DataFrame({"i": range(ctx.config.n_rows)})
            atomic_write_text(ctx.out_dir / "squares.csv", rows.assign(square=rows["i"] ** 2).to_csv(index=False))


        def run_report(ctx):
            total = int(pd.read_csv(ctx.inputs["squares"] / "squares.csv")["square"].sum())
            atomic_write_text(ctx.out_dir / "report.html", f"<p>sum of squares {total}</p>")


        class ToyRun(RunView):
            """The toy study's run view."""


        def stages(config):
            return [Stage("squares", run_squares, lambda c: {"n_rows": c.n_rows}, publish=("squares.csv",)),
                    Stage("report", run_report, lambda c: {}, needs=("squares",), publish=("report.html",))]


        TOY = StudyKind(id="toy", config_model=ToyConfig, stages=stages, view=ToyRun,
                        expected_tables=lambda config: ["squares"], report=run_report,
                        presets_dir=Path(__file__).parent / "presets")
    ''',
    "toyplug/presets/toy_small.yaml": "# A toy preset: two squares.\nstudy: toy\nname: small\nmodel: tiny:llama\n"
                                      "n_rows: 2\n",
    # the registration line: one entry point
    "toyplug-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n",
    "toyplug-0.1.dist-info/entry_points.txt": "[taskscope.studies]\ntoy = toyplug.toy:TOY\n",
}


@pytest.fixture
def toy_kind(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", TOY_FILES, monkeypatch)
    STUDIES.reload_plugins()
    yield STUDIES.lookup("toy")
    STUDIES.remove("toy")
    for module in [m for m in sys.modules if m == "toyplug" or m.startswith("toyplug.")]:
        del sys.modules[module]


def test_a_plugin_study_kind_runs_from_yaml_and_opens_with_its_own_view(toy_kind, tmp_path):
    from taskscope.pipeline import open_run, rebuild_report, run_study
    from taskscope.pipeline.config import ConfigError, load_config

    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump({"study": "toy", "name": "squares", "model": "tiny:llama", "n_rows": 5,
                                    "output_dir": str(tmp_path / "runs")}))
    run = run_study(path)
    assert type(run) is toy_kind.view and run.run_dir == tmp_path / "runs" / "squares"
    opened = open_run(run.run_dir)
    assert type(opened) is toy_kind.view and opened.config == load_config(path)
    squares = opened.tables["squares"]
    assert isinstance(squares, pd.DataFrame) and list(squares.columns) == ["i", "square"]
    assert squares["square"].tolist() == [i * i for i in range(5)] and list(opened.tables) == ["squares"]
    assert opened.manifest["study"] == {"kind": "toy", "name": "squares"}

    rebuilt = rebuild_report(run.run_dir, tmp_path / "again")  # the toy's own report stage, on the stored table
    assert rebuilt.read_text() == "<p>sum of squares 30</p>" == (run.run_dir / "report.html").read_text()

    path.write_text(yaml.safe_dump({"study": "toy", "n_rows": 0}))
    with pytest.raises(ConfigError, match=r"n_rows: Input should be greater than or equal to 1"):
        load_config(path)


def test_a_plugin_study_kinds_presets_are_listed_and_found_by_name(toy_kind):
    from typer.testing import CliRunner

    from taskscope.cli import app
    from taskscope.pipeline.config import load_config, presets

    assert presets()["toy_small"] == "A toy preset" and "tiny" in presets()
    config = load_config("toy_small")
    assert isinstance(config, toy_kind.config_model) and config.n_rows == 2
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["configs", "list"])
    assert result.exit_code == 0 and "toy_small" in result.output and "quickstart" in result.output
