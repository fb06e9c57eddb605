"""Item 1 of issue 12: no config, model or task name can make a run write outside its folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taskscope.common.paths import UnsafePathError, component_problem, inside
from taskscope.pipeline.config import ConfigError, config_from_dict
from taskscope.tasks import Instance, Task, TaskError, load_suite


@pytest.mark.parametrize(("data", "field"), [
    ({"name": "../../x"}, "name"),
    ({"name": "/tmp/elsewhere"}, "name"),
    ({"name": ".."}, "name"),
    ({"models": [{"name": "..", "kind": "pretrained"}]}, "models.0.name"),
    ({"models": [{"name": ".", "kind": "pretrained"}]}, "models.0.name"),
])
def test_mossa_config_rejects_names_that_leave_the_run_folder(data, field):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "bad.yaml")
    lines = str(info.value).splitlines()
    assert any(line.strip().startswith(f"{field}:") for line in lines), str(info.value)


@pytest.mark.parametrize(("data", "field"), [
    ({"name": "../../x"}, "name"),
    ({"name": "/abs"}, "name"),
    ({"models": [{"name": "..", "kind": "pretrained"}]}, "models.0.name"),
])
def test_transfer_config_rejects_names_that_leave_the_run_folder(data, field):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"study": "transfer", **data}, "bad.yaml")
    assert any(line.strip().startswith(f"{field}:") for line in str(info.value).splitlines())


def test_ordinary_names_still_validate():
    config = config_from_dict({"name": "my-study_1.2",
                               "models": [{"name": "pretrained", "kind": "pretrained"},
                                          {"name": "it.v2", "kind": "multitask"}],
                               "layer_map": {"reference_model": "it.v2"}})
    assert config.name == "my-study_1.2"


def test_templated_dataset_name_that_climbs_out_is_rejected(tmp_path: Path):
    (tmp_path / "rows.jsonl").write_text('{"text": "a", "label": "x"}\n')
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"datasets": [{"name": "../../../../X", "records": "rows.jsonl",
                                                  "templates": [{"input": "{text}", "output": "{label}"}]}]}))
    with pytest.raises(TaskError) as info:
        load_suite(f"templated:{spec}")
    assert info.value.field == "datasets.0.name" and "../../../../X" in str(info.value)


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\\b", "/etc"])
def test_task_names_that_are_not_one_folder_name_are_rejected(name):
    with pytest.raises(TaskError) as info:
        Task(name=name, instances=(Instance("i", "x", ("y",)),))
    assert info.value.field == "name"


def test_an_sni_file_whose_stem_is_dotdot_is_a_bad_file(write_sni, tmp_path: Path):
    write_sni("good")
    write_sni("..")  # the file "...json": its stem ".." would become a task folder name
    with pytest.raises(TaskError, match="task names become folder names"):
        load_suite(f"sni:{tmp_path / 'sni'}")
    with pytest.warns(UserWarning, match="skipped 1 bad"):
        assert load_suite(f"sni:{tmp_path / 'sni'}", skip_bad=True).names == ["good"]


def test_inside_accepts_descendants_and_refuses_escapes(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    assert inside(run, "a/b") == (run / "a" / "b").resolve()
    assert inside(run, run / "x") == (run / "x").resolve()
    for escape in ("..", "../other", "/tmp", "a/../../b"):
        with pytest.raises(UnsafePathError, match="outside the run folder"):
            inside(run, escape)
    (run / "link").symlink_to(tmp_path)  # a symlink out of the folder is followed, then refused
    with pytest.raises(UnsafePathError):
        inside(run, "link/escaped")


def test_component_problem_names_the_reason():
    assert component_problem("ok-name.v1") is None
    assert "'/'" in component_problem("a/b") and "parent" in component_problem("..")
    assert component_problem("") == "is empty"


def test_item_dir_refuses_a_name_that_leaves_the_stage_folder(tmp_path: Path):
    from taskscope.pipeline.executors.base import get_executor
    from taskscope.pipeline.stages import StageContext

    ctx = StageContext(config=None, out_dir=tmp_path / "stages" / "x", inputs={},
                       executor=get_executor("local"), run_dir=tmp_path)
    assert ctx.item_dir("control-task1") == (tmp_path / "stages" / "x" / "items" / "control-task1").resolve()
    with pytest.raises(UnsafePathError):
        ctx.item_dir("../../../../escaped")
