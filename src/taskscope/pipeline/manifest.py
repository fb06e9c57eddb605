"""The run manifest: what produced a run folder (code, stack, device, seeds, models, fast paths, timings).

``manifest.json`` (schema :data:`SCHEMA`) is built by :func:`build_manifest` in this order:

1. ``taskscope``: package version, and the git commit and dirty flag of the package's source folder when it
   is a git checkout (else null);
2. ``python`` and ``packages`` (torch, transformers, peft, accelerate, datasets, safetensors, numpy; null
   when not installed);
3. ``device`` (as configured and as resolved, CUDA version and device name), ``dtypes`` and ``seeds``:
   every ``dtype`` / ``seed`` field of the config by dotted path;
4. ``threads``: torch intra-op and inter-op threads and the CPU count;
5. ``models``: the base model's spec and fingerprint (computed where cheap: tiny models, local
   checkpoints; otherwise null with the reason);
6. ``stages``: a list in run order, per stage its name, key, code version, cached, seconds this run, seconds when computed, fast paths
   (cached stages contribute the record stored in their done-marker); ``fast_paths``: their sum;
7. ``dropped``: the tasks and records the task loader or its filters dropped (counts, and the stage file
   :data:`DROPPED_FILE` listing each with its reason), from every stage folder that wrote one.

:func:`manifest_so_far` gives a running stage (the report) the manifest of the stages before it;
:func:`manifest_table` flattens a manifest into ``section / name / value`` rows for the report.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from taskscope.common.fastpaths import merge_fast_paths
from taskscope.common.files import atomic_write_json

SCHEMA = 1
MANIFEST_FILE = "manifest.json"
DROPPED_FILE = "dropped.json"  # a tasks stage's record of what the loader dropped (`TaskSuite.dropped_summary`)
PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "safetensors", "numpy")


def git_state(folder: Path) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the git checkout holding ``folder``, or nulls when it is none (or git is absent)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        top = Path(git("rev-parse", "--show-toplevel"))
        if not Path(folder).resolve().is_relative_to(top.resolve()):
            return {"commit": None, "dirty": None}
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def taskscope_info() -> dict[str, Any]:
    import taskscope

    source = Path(taskscope.__file__).resolve().parent
    return {"version": taskscope.__version__, "source": str(source), **git_state(source)}


def fields_named(tree: Any, name: str, prefix: str = "") -> dict[str, Any]:
    """Every ``name`` field of a nested dict / list by dotted path (``control_training.seed``)."""
    found: dict[str, Any] = {}
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == name and not isinstance(value, (Mapping, list)):
                found[path] = value
            else:
                found.update(fields_named(value, name, path))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            found.update(fields_named(value, name, f"{prefix}[{i}]"))
    return found


def device_info(requested: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"requested": requested, "resolved": None, "cuda": torch.version.cuda, "name": None}
    try:
        from taskscope.models.loading import resolve_device

        resolved = resolve_device(requested)
        info["resolved"] = str(resolved)
        if resolved.type == "cuda":
            info["name"] = torch.cuda.get_device_name(resolved)
    except (ValueError, RuntimeError) as err:
        info["error"] = str(err)
    return info


def thread_info() -> dict[str, Any]:
    import torch

    return {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads(),
            "cpu_count": os.cpu_count()}


def base_fingerprint(spec: str) -> dict[str, Any]:
    """The spec and, where cheap, its fingerprint: tiny models as `load_model` gives it (float32); local and
    embedded checkpoints from the config and safetensors file identities; others null with the reason."""
    from taskscope.models.spec import parse_spec

    entry: dict[str, Any] = {"role": "base", "spec": spec, "fingerprint": None, "fingerprint_of": None}
    try:
        parsed = parse_spec(spec)
        if parsed.kind == "tiny" and parsed.lora_adapter is None:
            from taskscope.models import load_model

            entry.update(fingerprint=load_model(spec).fingerprint, fingerprint_of="weights (float32)")
            return entry
        if parsed.kind == "embedded":
            from taskscope.models.embedded import embedded_checkpoint

            path = embedded_checkpoint()
        else:
            path = Path(parsed.location).expanduser()
        if parsed.lora_adapter is None and (path / "config.json").is_file():
            from transformers import AutoConfig

            from taskscope.models.loaded import fingerprint_from_files

            entry.update(fingerprint=fingerprint_from_files(AutoConfig.from_pretrained(path), path),
                         fingerprint_of="config + safetensors file names, sizes, mtimes")
        else:
            entry["fingerprint_of"] = "not computed: not a local checkpoint (the spec names the model)"
    except Exception as err:  # noqa: BLE001 - provenance must not fail the run; the reason is recorded
        entry["fingerprint_of"] = f"not computed: {type(err).__name__}: {err}"
    return entry


def stage_entries(records: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per stage in run order: name, key, folder, code version, cached, seconds (this run / when computed), fast paths."""
    out = []
    for name, record in records.items():
        extra = record.extra
        out.append({"name": name, "key": record.key, "folder": record.folder.name, "version": extra.get("version"),
                    "cached": record.cached, "seconds": round(record.seconds, 3),
                    "compute_seconds": extra.get("compute_seconds"), "fast_paths": extra.get("fast_paths", {})})
    return out


def dropped_counts(records: Mapping[str, Any]) -> dict[str, Any]:
    """``{"n_tasks", "n_records", "files"}``: the sums over the stages whose folder holds :data:`DROPPED_FILE`."""
    out: dict[str, Any] = {"n_tasks": 0, "n_records": 0, "files": []}
    for record in records.values():
        path = Path(record.folder) / DROPPED_FILE
        if path.is_file():
            summary = json.loads(path.read_text())
            out["n_tasks"] += summary["n_tasks"]
            out["n_records"] += summary["n_records"]
            out["files"].append(f"stages/{Path(record.folder).name}/{DROPPED_FILE}")
    return out


def build_manifest(config: Any, records: Mapping[str, Any], *, status: str, started_at: float) -> dict[str, Any]:
    """The manifest of a run of ``config`` whose stages so far are ``records`` (see the module docstring)."""
    dump = config.model_dump(mode="json") if hasattr(config, "model_dump") else dataclasses.asdict(config)
    stages = stage_entries(records)
    return {
        "schema": SCHEMA,
        "status": status,
        "study": {"kind": dump.get("study", "mossa"), "name": dump.get("name")},
        "started_at": _iso(started_at),
        "finished_at": _iso(time.time()),
        "taskscope": taskscope_info(),
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "platform": platform.platform()},
        "packages": {name: _version(name) for name in PACKAGES},
        "device": device_info(dump.get("device", "cpu")),
        "dtypes": {**fields_named(dump, "dtype"), **fields_named(dump, "load_dtype")},
        "seeds": fields_named(dump, "seed"),
        "threads": thread_info(),
        "models": [base_fingerprint(dump["model"])] if "model" in dump else [],
        "fast_paths": merge_fast_paths([entry["fast_paths"] for entry in stages]),
        "dropped": dropped_counts(records),
        "stages": stages,
    }


def manifest_so_far(ctx: Any) -> dict[str, Any]:
    """The manifest while a stage runs (status ``running``): the stages before it, for the report stage."""
    return build_manifest(ctx.config, ctx.records, status="running", started_at=time.time())


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(path, manifest)


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / MANIFEST_FILE).read_text())


def manifest_table(manifest: Mapping[str, Any]) -> pd.DataFrame:
    """``section``, ``name``, ``value`` rows of a manifest, for a report table (fast paths: used / skipped)."""
    rows = []
    code = manifest["taskscope"]
    commit = code["commit"] or "not a git checkout"
    rows.append(("code", "taskscope", f"{code['version']} ({commit}{', modified' if code['dirty'] else ''})"))
    rows.append(("code", "python", manifest["python"]["version"]))
    rows += [("code", name, version or "not installed") for name, version in manifest["packages"].items()]
    device = manifest["device"]
    rows.append(("device", "device", f"{device['resolved'] or device['requested']}"
                 + (f" ({device['name']})" if device.get("name") else "")))
    rows += [("device", f"threads.{name}", str(value)) for name, value in manifest["threads"].items()]
    rows += [("config", name, str(value)) for name, value in {**manifest["dtypes"], **manifest["seeds"]}.items()]
    rows += [("model", model["role"], f"{model['spec']}: {model['fingerprint'] or model['fingerprint_of']}")
             for model in manifest["models"]]
    for name, entry in sorted(manifest["fast_paths"].items()):
        skipped = ", ".join(f"{n}x {reason}" for reason, n in entry["skipped"].items())
        rows.append(("fast path", name, f"used {entry['used']}x" + (f"; not taken {skipped}" if skipped else "")))
    dropped = manifest.get("dropped")
    if dropped is not None:
        rows.append(("data", "dropped", f"{dropped['n_tasks']} task(s), {dropped['n_records']} record(s)"
                     + (f" (listed in {', '.join(dropped['files'])})" if dropped["n_tasks"] or dropped["n_records"] else "")))
    for stage in manifest["stages"]:
        took = stage["compute_seconds"]
        rows.append(("stage", stage["name"], ("cached" if stage["cached"] else "ran") + f", v{stage['version']}, "
                     + (f"{took:.1f} s to compute" if took is not None else "time unknown")))
    return pd.DataFrame(rows, columns=["section", "name", "value"])
