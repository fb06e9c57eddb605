"""Study configs of every kind: the shared base model, reading YAML, ``--set`` overrides and one-line errors.

A study YAML is read by :func:`read_config_yaml` (find it, ``yaml.safe_load``, resolve relative paths, apply the
``--set`` overrides, refuse ``???`` settings) and validated by :func:`config_from_dict`, in this order: pick the
study kind its ``study:`` key names (absent: ``mossa``) from the study registry
(:data:`~taskscope.pipeline.kinds.STUDIES`); refuse a key the kind renamed, naming the new one (``study config
x.yaml: `experimental_models` was renamed `models```); validate with the kind's pydantic model (``extra="forbid"``
all the way down), turning errors into a :class:`ConfigError` that names the file and each bad field by its dotted
path (``similarity.n_bootstrap: Input should be greater than or equal to 0``).

Every kind's config derives from :class:`StudyConfigBase` (``study``, ``name``, ``model``, ``model_options``,
``device``, ``output_dir``: what the engine itself reads).
"""

from __future__ import annotations

import copy
import difflib
import typing
import warnings
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from taskscope.common.paths import check_component
from taskscope.pipeline.kinds import DEFAULT_STUDY, STUDIES, StudyKind
from taskscope.registry import RegistryError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # shipped in the package; ./configs links here


class ConfigError(ValueError):
    """A study config that does not validate; the message names the file and the fields."""


class Strict(BaseModel):
    """A config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


# A name that becomes a folder of the run (the run folder itself, a model's item folder): one safe path
# component, so no config can make a run write outside ``output_dir`` (see taskscope.common.paths).
FolderName = Annotated[str, AfterValidator(check_component)]


class ModelOptions(Strict):
    """How every model of a study is loaded (``taskscope.models.load_model``) for training and scoring.

    ``revision`` pins a hub id's branch, tag or commit (only for a hub ``model``); ``trust_remote_code`` lets
    transformers run Python code shipped with the checkpoint (off by default, warns when on); ``dtype`` is the
    weights' dtype while training and scoring (``auto``: the checkpoint's own; a MOSSA study loads the models it
    extracts hidden states from in ``extraction.load_dtype``).
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

    def load_kwargs(self, device: str) -> dict[str, Any]:
        """The keyword arguments of ``load_model``: these options and ``device``."""
        return {"device": device, "dtype": self.dtype, "revision": self.revision,
                "trust_remote_code": self.trust_remote_code}


class StudyConfigBase(Strict):
    """What every study kind's config holds: the engine reads these fields (run folder, model, device)."""

    study: str = DEFAULT_STUDY  # the study kind (taskscope.pipeline.kinds.STUDIES); each kind fixes its own
    name: FolderName = "study"  # the run folder is output_dir / name
    model: str = "embedded"  # a taskscope.models.load_model spec
    model_options: ModelOptions = Field(default_factory=ModelOptions)
    device: str = "cpu"
    output_dir: Path = Path("runs")


def load_kwargs(config: StudyConfigBase) -> dict[str, Any]:
    """``load_model`` keyword arguments of every model of a study: device and ``model_options``."""
    return config.model_options.load_kwargs(config.device)


def model_options_slice(config: StudyConfigBase) -> dict[str, Any]:
    """``{"model_options": ...}`` for a stage's config slice, empty for the defaults (so runs made before the
    options existed keep their stage keys)."""
    options = config.model_options
    return {} if options == ModelOptions() else {"model_options": options.model_dump(mode="json")}


def section_slice(section: BaseModel) -> dict[str, Any]:
    """A typed plug-in section (a ``TrainConfig``, ``PromptFormat``, ``EvalSettings``) as a stage's config slice or a
    job's argument: the fields that differ from the section model's defaults, as JSON.  The same after a config is
    dumped and read back, and unchanged when the section model gains a field."""
    return section.model_dump(mode="json", exclude_defaults=True)


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


def format_errors(err: ValidationError, source: str, model: type[BaseModel], label: str = "study config") -> str:
    """One line per invalid field, named by its dotted path: ``  tasks.n_inputs: Input should be ...``; a key
    no model takes gets ``did you mean ...?`` when it is close to one (``samplr`` -> ``sampler``)."""
    lines = [f"invalid {label} {source}:"]
    known: set[str] | None = None
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden" and item["loc"]:
            known = known if known is not None else _field_names(model)
            close = difflib.get_close_matches(str(item["loc"][-1]), sorted(known), n=1)
            message += f"; did you mean {close[0]!r}?" if close else ""
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def study_kind_of(data: dict[str, Any], source: str = "<dict>") -> StudyKind:
    """The registered study kind the mapping's ``study:`` key names (absent: ``mossa``)."""
    name = data.get("study", DEFAULT_STUDY)
    try:
        return STUDIES.lookup(str(name))
    except RegistryError as err:
        raise ConfigError(f"invalid study config {source}:\n  study: {err}") from None


_ABSENT = object()


def renamed_keys(data: dict[str, Any], renamed: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(old, new)`` for every dotted key of ``renamed`` that ``data`` still sets."""
    found = []
    for old, new in renamed.items():
        node: Any = data
        for part in old.split("."):
            node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is not _ABSENT:
            found.append((old, new))
    return found


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> StudyConfigBase:
    """Validate a study mapping as the kind its ``study:`` key names (module docstring, in that order)."""
    kind = study_kind_of(data, source)
    old = renamed_keys(data, kind.renamed)
    if old:
        raise ConfigError(f"study config {source}: " + "; ".join(f"`{a}` was renamed `{b}`" for a, b in old))
    try:
        return kind.config_model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_errors(err, source, kind.config_model)) from None


def preset_files(kinds: bool = True) -> dict[str, Path]:
    """Preset name -> file: the bundled ``configs/*.yaml`` (the built-in kinds' presets), then (with ``kinds``) the
    ``presets_dir`` of every installed plug-in study kind (its entry point is loaded; the built-in kinds are not
    imported)."""
    found = {path.stem: path for path in sorted(CONFIG_DIR.glob("*.yaml"))}
    for point in entry_points(group=STUDIES.entry_point_group) if kinds else ():
        folder = getattr(point.load(), "presets_dir", None)
        for path in sorted(Path(folder).glob("*.yaml")) if folder is not None else ():
            found.setdefault(path.stem, path)
    return found


def preset_path(name: str | Path) -> Path:
    """``name`` as a path; a bare name with no such file (``tiny``) is the preset of that name (:func:`preset_files`:
    the bundled ``configs/tiny.yaml`` first)."""
    path = Path(name)
    if path.exists() or path.suffix:
        return path
    if (CONFIG_DIR / f"{path}.yaml").exists():  # the bundled presets need no study kind imported
        return CONFIG_DIR / f"{path}.yaml"
    return preset_files().get(str(path), path)


def presets(kinds: bool = True) -> dict[str, str]:
    """Preset name -> its one-line description (the first sentence of the file's opening comment); ``kinds``: as
    for :func:`preset_files`."""
    out = {}
    for path in preset_files(kinds).values():
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
    item is addressed by its index, ``models.1.name=x``).  Validation comes after, as for the file."""
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


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> StudyConfigBase:
    """Read a study YAML of any kind (with ``--set`` ``overrides``, :func:`read_config_yaml`) and validate it as the
    kind its ``study:`` key names; a bare name looks in ``configs/``."""
    path, data = read_config_yaml(path, overrides)
    return config_from_dict(data, str(path))


def dump_config(config: StudyConfigBase) -> str:
    """The config as YAML (every default filled in): what a run folder's ``study.yaml`` holds."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
