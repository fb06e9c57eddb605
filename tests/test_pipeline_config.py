"""MOSSA study configs: presets validate, bad fields are named, YAML is read safely."""

from pathlib import Path

import pytest

from taskscope.pipeline.config import (
    CONFIG_DIR,
    ConfigError,
    config_from_dict,
    dump_config,
    load_config,
)
from taskscope.studies.mossa.config import MossaConfig

MOSSA_PRESETS = ("quickstart", "tiny", "paper_llama2_7b", "paper_llama2_7b_heldout")
PRESETS = [CONFIG_DIR / f"{name}.yaml" for name in MOSSA_PRESETS]


def test_presets_exist():
    assert all(path.is_file() for path in PRESETS)


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_validates_and_round_trips(path):
    required = ["tasks.source=templated:/data/flan/spec.yaml"] if path.stem.startswith("paper") else []
    config = load_config(path, required)
    assert config_from_dict(__import__("yaml").safe_load(dump_config(config))) == config


def test_quickstart_is_the_default_config():
    assert load_config("quickstart").model == "embedded"
    assert load_config("quickstart").tasks.source.startswith("builtin")


@pytest.mark.parametrize(("data", "field"), [
    ({"tasks": {"n_inputs": 2}}, "tasks.n_inputs"),
    ({"similarity": {"bootstrap": {"n_resamples": -1}}}, "similarity.bootstrap.n_resamples"),
    ({"extraction": {"pooling": "max"}}, "extraction.pooling"),
    ({"layer_map": {"shared_min_cka": 2}}, "layer_map.shared_min_cka"),
    ({"modle": "embedded"}, "modle"),
    ({"models": [{"name": "a b", "kind": "pretrained"}]}, "models.0.name"),
    ({"models": [{"name": "p", "kind": "pretrained", "heldout_tasks": ["x"]}]}, "models.0"),
    ({"layer_map": {"reference_model": "nope"}}, "layer_map.reference_model"),
])
def test_validation_errors_name_the_field(data, field, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(__import__("yaml").safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert field in str(info.value) and str(path) in str(info.value)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_defaults_compare_pretrained_and_instruction_tuned():
    config = MossaConfig()
    assert [m.kind for m in config.models] == ["pretrained", "multitask"]
    assert config.output_dir == Path("runs")


def test_no_config_means_the_quickstart_preset():
    from taskscope.pipeline.run import resolve_config

    assert resolve_config(None) == load_config(CONFIG_DIR / "quickstart.yaml")
    assert resolve_config("tiny").model == "tiny:llama"


def test_run_folder_errors_are_clear(tmp_path):
    from taskscope.studies.mossa.run import MossaRun

    with pytest.raises(FileNotFoundError, match="no run folder"):
        MossaRun(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="not a finished run folder: it has no study.yaml"):
        MossaRun(tmp_path).tables["mossa"]


def test_model_options_reach_every_load_and_extraction_keeps_its_dtype(tmp_path, monkeypatch):
    """revision / trust_remote_code / dtype of model_options are what the study's jobs pass to load_model; the
    extraction job swaps in extraction.load_dtype; a revision for a non-hub model is a validation problem."""
    import taskscope.models as models
    from taskscope.pipeline.config import config_from_dict, load_kwargs, model_options_slice
    from taskscope.pipeline.validate import check_study
    from taskscope.studies.mossa import extract

    config = config_from_dict({"model": "someone/model", "model_options": {"revision": "v2", "dtype": "bfloat16"},
                               "extraction": {"load_dtype": "float32"}})
    assert load_kwargs(config) == {"device": "cpu", "dtype": "bfloat16", "revision": "v2", "trust_remote_code": False}
    assert model_options_slice(config)["model_options"]["revision"] == "v2"
    assert model_options_slice(config_from_dict({})) == {}  # default options keep old stage keys
    seen = []
    real = models.load_model
    monkeypatch.setattr(models, "load_model", lambda spec, **kw: seen.append(kw) or real("tiny:llama"))
    extract.extract_job("someone/model", load_kwargs(config), config.extraction.model_dump(), {"t": ["a b", "c"]},
                      tmp_path)
    assert seen == [{**load_kwargs(config), "dtype": "float32"}]
    assert (tmp_path / extract.STATES_FILE).is_file()

    bad = config_from_dict({"model": "tiny:llama", "model_options": {"revision": "main"}})
    assert [p.field for p in check_study(bad, load_tasks=False)] == ["model_options.revision"]
    with pytest.warns(UserWarning, match="trust_remote_code is on"):
        config_from_dict({"model_options": {"trust_remote_code": True}})
    assert config_from_dict({}).model_options.trust_remote_code is False


@pytest.mark.parametrize(("data", "old", "new"), [
    ({"experimental_models": []}, "experimental_models", "models"),
    ({"multitask_training": {}}, "multitask_training", "instruction_tuning"),
    ({"report": {"baseline_model": "pretrained"}}, "report.baseline_model", "baseline_model"),
    ({"extraction": {"dtype": "float32"}}, "extraction.dtype", "extraction.load_dtype"),
    ({"study": "transfer", "context": {"kind": "none"}}, "context", "prompt_format"),
])
def test_a_renamed_key_is_one_line_naming_the_new_key(data, old, new, tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(__import__("yaml").safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"study config {path}: `{old}` was renamed `{new}`"


def test_every_split_share_of_a_mossa_task_is_a_config_field():
    """The validation share the controls are scored on is `tasks.validation` (default 10 %), not a hidden default."""
    from taskscope.studies.mossa.tasks import formatted_splits

    config = config_from_dict({"model": "tiny:llama", "tasks": {"options": {"n_instances": 40},
                                                               "tasks": ["nli_hypernym"], "n_inputs": 8,
                                                               "n_train": None}})
    assert config.tasks.validation == 0.1
    default = formatted_splits(config, ("train", "validation", "test"))["nli_hypernym"]
    assert [len(default[p]) for p in ("test", "validation", "train")] == [8, 4, 28]
    wider = config.model_copy(update={"tasks": config.tasks.model_copy(update={"validation": 10})})
    split = formatted_splits(wider, ("train", "validation", "test"))["nli_hypernym"]
    assert [len(split[p]) for p in ("test", "validation", "train")] == [8, 10, 22]
    assert split["test"] == default["test"]  # the inputs do not move with the validation share
    with pytest.raises(ConfigError, match="tasks.validation"):
        config_from_dict({"tasks": {"validation": 1.5}})


@pytest.mark.parametrize(("data", "field"), [
    ({"control_training": {"lr": -1}}, "control_training.lr"),
    ({"instruction_tuning": {"lora": {"r": 0}}}, "instruction_tuning.lora.r"),
    ({"prompt_format": {"kind": "nope"}}, "prompt_format.kind"),
    ({"study": "transfer", "prompt_format": {"n_exemplars": -1}}, "prompt_format.n_exemplars"),
    ({"study": "transfer", "evaluation": {"settings": {"max_new_tokens": 0}}}, "evaluation.settings.max_new_tokens"),
    ({"study": "transfer", "fewshot": {"train": {"epochs": 0}}}, "fewshot.train.epochs"),
    ({"study": "transfer", "instruction_tuning": {"batch_size": "many"}}, "instruction_tuning.batch_size"),
])
def test_a_bad_field_of_a_typed_section_fails_at_load_time_naming_it(data, field):
    """Training, prompt-format and evaluation sections are typed models of the config, not dicts checked later."""
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "bad.yaml")
    assert any(line.strip().startswith(f"{field}:") for line in str(info.value).splitlines()), str(info.value)


def test_typed_sections_keep_their_stage_keys_through_a_dump_and_reload():
    """A stage key reads a typed section's non-default fields, so ``study.yaml`` read back gives the same keys."""
    import yaml

    from taskscope.pipeline.kinds import STUDIES
    from taskscope.pipeline.stages import stage_key

    for name in ("tiny", "transfer_tiny"):
        config = load_config(name)
        again = config_from_dict(yaml.safe_load(dump_config(config)))
        keys: dict[str, dict[str, str]] = {"first": {}, "again": {}}
        for stage in STUDIES[config.study].stages(config):
            keys["first"][stage.name] = stage_key(stage, config, keys["first"])
            keys["again"][stage.name] = stage_key(stage, again, keys["again"])
        assert again == config and keys["again"] == keys["first"]
        changed = config_from_dict({**yaml.safe_load(dump_config(config)),
                                    "instruction_tuning": {**config.instruction_tuning.model_dump(mode="json"),
                                                           "lr": 0.5}})
        stages = {s.name: s for s in STUDIES[config.study].stages(config)}
        training = "experimental" if name == "tiny" else "instruction_tune"
        assert stages[training].config_slice(changed) != stages[training].config_slice(config)
