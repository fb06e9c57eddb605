"""`StudyConfig`: everything a MOSSA study needs, validated (pydantic, ``extra="forbid"``), read from YAML.

YAML is read with ``yaml.safe_load`` (no code execution).  :func:`load_config` turns validation
errors into a :class:`ConfigError` whose message names the file and each bad field by its dotted
path (``similarity.n_bootstrap: Input should be greater than or equal to 0``).

Training and prompt-format sections are dicts handed to ``taskscope.train.config.TrainConfig`` and
``taskscope.tasks.formats.PromptFormat``; when those packages are importable they are validated here
too, so a typo fails before any work starts.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from taskscope.analysis.layer_map import LayerMapParams
from taskscope.common.paths import check_component

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # shipped in the package; ./configs links here


class ConfigError(ValueError):
    """A study config that does not validate; the message names the file and the fields."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A name that becomes a folder of the run (the run folder itself, a model's item folder): one safe path
# component, so no config can make a run write outside ``output_dir`` (see taskscope.common.paths).
FolderName = Annotated[str, AfterValidator(check_component)]


class TaskSelection(_Strict):
    """Which tasks, and how many instances of each for training and for the MOSSA inputs."""

    source: str = "builtin"  # a task-source spec for taskscope.tasks.load_suite
    options: dict[str, Any] = Field(default_factory=dict)  # keyword options of the source
    tasks: list[str] | None = None  # keep only these (in this order)
    clusters: list[str] | None = None  # keep only tasks in these clusters
    max_tasks_per_cluster: int | None = Field(None, ge=1)
    n_inputs: int = Field(48, ge=4)  # MOSSA inputs per task (the task's test split)
    n_train: int | None = Field(64, ge=1)  # training instances per task (None: all the rest)
    seed: int = 0


class ModelOptions(_Strict):
    """How every model of a study is loaded (``taskscope.models.load_model``) for training and scoring.

    ``revision`` pins a hub id's branch, tag or commit (only for a hub ``model``); ``trust_remote_code`` lets
    transformers run Python code shipped with the checkpoint (off by default, warns when on); ``dtype`` is the
    weights' dtype while training and scoring (``auto``: the checkpoint's own; hidden states use
    ``extraction.dtype``).
    """

    revision: str | None = Field(None, min_length=1)
    trust_remote_code: bool = False
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"

    @model_validator(mode="after")
    def _warn_remote_code(self) -> ModelOptions:
        if self.trust_remote_code:
            warnings.warn("model_options.trust_remote_code is on: loading the model may run Python code shipped "
                          "with the checkpoint; enable it only for checkpoints you trust", UserWarning, stacklevel=2)
        return self

    def load_kwargs(self, device: str, *, dtype: str | None = None) -> dict[str, Any]:
        """The keyword arguments of ``load_model``: these options, ``device`` and (for extraction) ``dtype``."""
        return {"device": device, "dtype": dtype or self.dtype, "revision": self.revision,
                "trust_remote_code": self.trust_remote_code}


class ExperimentalModel(_Strict):
    """An experimental model: the pre-trained base, or the base instruction-tuned on the suite minus held-out tasks."""

    name: FolderName = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["pretrained", "multitask"]
    heldout_tasks: list[str] = Field(default_factory=list)
    heldout_clusters: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _heldout_needs_training(self) -> ExperimentalModel:
        if self.kind == "pretrained" and (self.heldout_tasks or self.heldout_clusters):
            raise ValueError("a 'pretrained' model sees no tasks; heldout_tasks/heldout_clusters apply to 'multitask'")
        return self


def _default_models() -> list[ExperimentalModel]:
    return [ExperimentalModel(name="pretrained", kind="pretrained"),
            ExperimentalModel(name="instruction_tuned", kind="multitask")]


class ExtractionConfig(_Strict):
    batch_size: int = Field(16, ge=1)
    pooling: Literal["last", "mean"] = "last"
    dtype: Literal["float32", "bfloat16"] = "float32"
    share_prefix: bool = True  # run a token prefix shared by a task's prompts once (taskscope.represent.prefix)
    # prompts longer than this many tokens are cut (None: the model's context length, read from its config);
    # "left" keeps the end (the last token is what MOSSA reads), as training's fit_lengths does
    max_length: int | None = Field(None, ge=1)
    truncation_side: Literal["left", "right"] = "left"
    # the last layer after the stack's final norm (True: Hugging Face's last hidden_states entry) or before it
    final_norm: bool = True


class BootstrapConfig(_Strict):
    n_resamples: int = Field(0, ge=0)
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = 0


class MeasureSpec(_Strict):
    """One extra similarity measure of the measure registry and its parameters (``measures.csv``)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


def _measure_entry(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class SimilarityConfig(_Strict):
    """CKA per kernel (``mossa.csv``, with intervals), plus any other registered measures (``measures.csv``).

    ``measures`` entries are a registered name (``procrustes``) or ``{name, params}``; their parameters are
    checked against the measure's own parameter model before any work starts, and the report says whether
    the layer-wise conclusions agree with CKA's (``measure_agreement.csv``).
    """

    kernels: list[str] = Field(default_factory=lambda: ["linear"], min_length=1)
    debiased: bool = False
    kernel_args: dict[str, dict[str, Any]] = Field(default_factory=dict)
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)
    measures: list[Annotated[MeasureSpec, BeforeValidator(_measure_entry)]] = Field(default_factory=list)


class ControlEvaluationConfig(_Strict):
    """How every control is scored against the base model on its task's validation split (``controls.csv``).

    The validation split is the task's 10 % validation share of ``taskscope.tasks.splits.split_task``,
    disjoint from the training examples and the MOSSA inputs.  The target loss is always computed;
    ``generate`` adds greedy completions scored by ROUGE-L and exact match.  A control has ``learned`` its
    task when its mean validation loss is more than ``learned_margin`` (nats per target token) below the
    base model's.
    """

    max_examples: int | None = Field(None, ge=1)  # cap on validation examples per task
    generate: bool = True
    max_new_tokens: int = Field(16, ge=1)
    batch_size: int = Field(16, ge=1)
    learned_margin: float = Field(0.05, ge=0)
    n_bootstrap: int = Field(1000, ge=0)  # paired resamples of the validation examples for the loss gain's interval
    confidence: float = Field(0.95, gt=0, lt=1)


class ReportConfig(_Strict):
    title: str | None = None
    figure_formats: list[Literal["png", "pdf"]] = Field(default_factory=lambda: ["png", "pdf"])
    baseline_model: str = "pretrained"  # differences are reported against this model


class StudyConfig(_Strict):
    name: FolderName = "quickstart"  # the run folder is output_dir / name
    model: str = "embedded"  # a taskscope.models.load_model spec
    model_options: ModelOptions = Field(default_factory=ModelOptions)
    device: str = "cpu"
    tasks: TaskSelection = Field(default_factory=TaskSelection)
    prompt_format: dict[str, Any] = Field(default_factory=lambda: {"kind": "definition"})
    experimental_models: list[ExperimentalModel] = Field(default_factory=_default_models, min_length=1)
    control_training: dict[str, Any] = Field(default_factory=dict)
    control_seeds: int = Field(1, ge=1)  # replicate controls per task (training seed + s): the noise ceiling
    control_evaluation: ControlEvaluationConfig = Field(default_factory=ControlEvaluationConfig)
    multitask_training: dict[str, Any] = Field(default_factory=dict)
    extraction: ExtractionConfig = Field(default_factory=ExtractionConfig)
    similarity: SimilarityConfig = Field(default_factory=SimilarityConfig)
    layer_map: LayerMapParams = Field(default_factory=LayerMapParams)
    report: ReportConfig = Field(default_factory=ReportConfig)
    output_dir: Path = Path("runs")

    @field_validator("prompt_format")
    @classmethod
    def _prompt_format_validates(cls, value: dict[str, Any]) -> dict[str, Any]:
        validate_with("taskscope.tasks.formats", "PromptFormat", value)
        return value

    @field_validator("control_training", "multitask_training")
    @classmethod
    def _training_validates(cls, value: dict[str, Any]) -> dict[str, Any]:
        validate_with("taskscope.train.config", "TrainConfig", value)
        return value

    @model_validator(mode="after")
    def _names_consistent(self) -> StudyConfig:
        names = [m.name for m in self.experimental_models]
        if len(set(names)) != len(names):
            raise ValueError(f"experimental_models: names must be unique, got {names}")
        if self.layer_map.reference_model not in names:
            raise ValueError(f"layer_map.reference_model {self.layer_map.reference_model!r} is not one of the "
                             f"experimental_models {names}")
        if self.report.baseline_model not in names:
            raise ValueError(f"report.baseline_model {self.report.baseline_model!r} is not one of the "
                             f"experimental_models {names}")
        return self

    @model_validator(mode="after")
    def _layer_map_baseline_known(self) -> StudyConfig:
        names = [m.name for m in self.experimental_models]
        if self.layer_map.rule == "changepoint" and self.layer_map.baseline_model not in names:
            raise ValueError(f"layer_map.baseline_model {self.layer_map.baseline_model!r} is not one of the "
                             f"experimental_models {names} (the changepoint rule needs it; or set rule: threshold)")
        return self

    def model_names(self) -> list[str]:
        return [m.name for m in self.experimental_models]


def load_kwargs(config: Any) -> dict[str, Any]:
    """``load_model`` keyword arguments of every model of a study (MOSSA or transfer): device and ``model_options``."""
    return config.model_options.load_kwargs(config.device)


def model_options_slice(config: Any) -> dict[str, Any]:
    """``{"model_options": ...}`` for a stage's config slice, empty for the defaults (so runs made before the
    options existed keep their stage keys)."""
    options = config.model_options
    return {} if options == ModelOptions() else {"model_options": options.model_dump(mode="json")}


def validate_with(module: str, cls_name: str, value: dict[str, Any]) -> BaseModel:
    """``module.cls_name.model_validate(value)`` (errors keep their field names), the model imported on first use.

    ``taskscope.train`` pulls in torch, transformers and PEFT (~4 s), which commands that never validate a
    study config (``taskscope --help``, ``taskscope tasks list``) should not pay.
    """
    return getattr(importlib.import_module(module), cls_name).model_validate(value)


# the models whose fields a study config's free-form sections hold (for "did you mean" on a misspelt key)
_SECTION_MODELS = (("taskscope.train.config", "TrainConfig"), ("taskscope.tasks.formats", "PromptFormat"),
                   ("taskscope.evaluate", "EvalSettings"))


def _field_names(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    """Every field name of ``model`` and of the models nested in its fields (lists and unions included)."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    stack = [info.annotation for info in model.model_fields.values()]
    while stack:
        annotation = stack.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= _field_names(annotation, seen)
        stack.extend(typing.get_args(annotation))
    return names


def _known_keys(model: type[BaseModel]) -> set[str]:
    names = _field_names(model)
    for module, cls_name in _SECTION_MODELS:
        names |= _field_names(getattr(importlib.import_module(module), cls_name))
    return names


def format_errors(err: ValidationError, source: str, label: str = "study config",
                  model: type[BaseModel] | None = None) -> str:
    """One line per invalid field, named by its dotted path: ``  tasks.n_inputs: Input should be ...``; a key
    no model takes gets ``did you mean ...?`` when it is close to one (``samplr`` -> ``sampler``)."""
    lines = [f"invalid {label} {source}:"]
    known: set[str] | None = None
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden" and item["loc"]:
            known = known if known is not None else _known_keys(model or StudyConfig)
            close = difflib.get_close_matches(str(item["loc"][-1]), sorted(known), n=1)
            message += f"; did you mean {close[0]!r}?" if close else ""
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> StudyConfig:
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_errors(err, source)) from None


def preset_path(name: str | Path) -> Path:
    """``name`` as a path; a bare name with no such file (``tiny``) is the bundled preset ``configs/tiny.yaml``."""
    path = Path(name)
    if not path.exists() and not path.suffix and (CONFIG_DIR / f"{path}.yaml").exists():
        return CONFIG_DIR / f"{path}.yaml"
    return path


def presets() -> dict[str, str]:
    """Bundled preset name -> its one-line description (the first sentence of the file's opening comment)."""
    out = {}
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        comment = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("#").strip())
        text = " ".join(comment)
        out[path.stem] = (text.split(". ")[0].split(": ")[0] if text else "").rstrip(".")
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b=v`` -> (``["a", "b"]``, ``yaml.safe_load("v")``): ``3`` is an int, ``[x, y]`` a list, ``null`` None."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. tasks.n_inputs=32")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {item!r}: the value is not valid YAML ({err.problem})") from None
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with every ``a.b=v`` of ``overrides`` set (missing mappings are created; a list
    item is addressed by its index, ``experimental_models.1.name=x``).  Validation comes after, as for the file."""
    data = copy.deepcopy(data)
    for item in overrides:
        keys, value = parse_override(item)
        node: Any = data
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            where = ".".join(keys[:depth + 1])
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise ConfigError(f"--set {item!r}: {where}: no item {key} in a list of {len(node)}")
                key = int(key)  # type: ignore[assignment]
            elif not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(keys[:depth])} is a value, not a section")
            if last:
                node[key] = value
            else:
                if isinstance(node, dict) and not isinstance(node.get(key), (dict, list)):
                    node[key] = {}
                node = node[key]
    return data


REQUIRED = "???"  # a preset value the user must set (a path on their machine): `config validate` names it


def missing_settings(data: Any, where: str = "") -> list[str]:
    """Dotted keys whose value is still the :data:`REQUIRED` placeholder (also as ``prefix:???``)."""
    if isinstance(data, dict):
        return [key for k, v in data.items() for key in missing_settings(v, f"{where}{k}.")]
    if isinstance(data, list):
        return [key for i, v in enumerate(data) for key in missing_settings(v, f"{where}{i}.")]
    return [where[:-1]] if isinstance(data, str) and data.split(":")[-1].strip() == REQUIRED else []


# task sources whose spec path is a local file or folder; other specs (``hf:NAME``) resolve only a path that exists
_PATH_SOURCES = ("sni", "templated", "jsonl")


def _relative_to(value: str, base: Path, always: bool) -> str:
    path = Path(value).expanduser()
    if path.is_absolute() or not value:
        return str(path)
    resolved = base / path
    return str(resolved) if always or resolved.exists() or value.startswith(".") else value


def resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths a study file names resolve against that file's folder, not the working directory:
    ``tasks.source`` (``sni:``, ``templated:``, ``jsonl:``; another source's path only when it exists there),
    ``tasks.split_dir``, ``unsupervised_text`` and a ``model`` that is a local folder or file there.  ``output_dir``
    stays relative to where the run is started (runs go beside the user, not beside a preset)."""
    data = copy.deepcopy(data)
    tasks = data.get("tasks")
    if isinstance(tasks, dict):
        source = tasks.get("source")
        if isinstance(source, str) and ":" in source and REQUIRED not in source:
            prefix, path = source.split(":", 1)
            tasks["source"] = f"{prefix}:{_relative_to(path, base, prefix.strip() in _PATH_SOURCES)}"
        if isinstance(tasks.get("split_dir"), str) and REQUIRED not in tasks["split_dir"]:
            tasks["split_dir"] = _relative_to(tasks["split_dir"], base, True)
    if isinstance(data.get("unsupervised_text"), str):
        data["unsupervised_text"] = _relative_to(data["unsupervised_text"], base, True)
    model = data.get("model")
    if isinstance(model, str) and (model.startswith(".") or (base / model).exists()) and ":" not in model:
        data["model"] = str(base / model)
    return data


def read_config_yaml(path: str | Path, overrides: Sequence[str] = (), *,
                     allow_missing: bool = False) -> tuple[Path, dict[str, Any]]:
    """The mapping in a study YAML and its resolved path, in this order: find it (a bare name is a bundled
    preset), ``yaml.safe_load`` it, resolve its relative paths against its folder (:func:`resolve_paths`), apply
    the ``--set`` ``overrides`` (relative paths in them stay relative to the working directory), then check no
    :data:`REQUIRED` setting is left (one line naming each, unless ``allow_missing``)."""
    path = preset_path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"study config {path} does not exist (presets: {', '.join(presets())})") from None
    except IsADirectoryError:
        raise ConfigError(f"study config {path} is a folder, not a YAML file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"study config {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"study config {path} must hold a mapping, got {type(data).__name__}")
    data = apply_overrides(resolve_paths(data, path.resolve().parent), overrides)
    missing = missing_settings(data)
    if missing and not allow_missing:
        sets = " ".join(f"--set {key}=..." for key in missing)
        raise ConfigError(f"study config {path}: required setting(s) {', '.join(missing)} not set; edit a copy of "
                          f"the file or pass {sets}")
    return path, data


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> StudyConfig:
    """Read a YAML MOSSA study config and validate it; a bare name looks in ``configs/``."""
    path, data = read_config_yaml(path, overrides)
    return config_from_dict(data, str(path))


def dump_config(config: StudyConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
