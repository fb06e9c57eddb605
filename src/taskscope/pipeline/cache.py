"""Content-addressed stage folders, verified done-markers and data hashes.

A stage's folder is ``run_dir/stages/{stage}-{key[:12]}`` where ``key`` is :func:`taskscope.common.hashing.digest` of
the stage's config slice (which includes :func:`data_fingerprint` of the files it reads), its code
version and its upstream stages' keys.  Finished work is marked by a ``_done.json`` file written last
(atomically), which lists the sha256 (:func:`taskscope.common.files.file_sha256`) of every file it
covers, so

* a folder without its marker is unfinished work (re-entered on resume; items inside it that carry
  their own marker are kept, see :func:`item_done`);
* a changed config slice or data file gives a new key, hence a new folder: only that stage and its
  dependants rerun;
* a folder whose files no longer match their marker (:func:`verify_done`) is not reused.

Marker of an item folder: ``{"finished_at", "files": {relative path: sha256}}``.  Marker of a stage
folder: the same for the files outside ``items/``, plus ``"items": {name: sha256 of the item's marker}``
and the stage's ``key``, ``version``, ``seconds`` and ``fast_paths``.  Temporaries (unfinished writes)
are never listed.  All writes are atomic (:mod:`taskscope.common.files`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from taskscope.common.files import atomic_write_json, file_sha256, is_temporary
from taskscope.common.hashing import digest

DONE_MARKER = "_done.json"
ITEMS = "items"
logger = logging.getLogger("taskscope.pipeline")


# ---------------------------------------------------------------- markers
def is_done(folder: Path) -> bool:
    return (Path(folder) / DONE_MARKER).is_file()


def read_marker(folder: Path) -> dict:
    return json.loads((Path(folder) / DONE_MARKER).read_text())


def folder_files(folder: Path, *, skip_items: bool) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``folder`` but its marker and temporaries."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if (not path.is_file() or rel.as_posix() == DONE_MARKER or any(is_temporary(p) for p in rel.parts)
                or (skip_items and rel.parts[0] == ITEMS)):
            continue
        files[rel.as_posix()] = file_sha256(path)
    return files


def item_markers(folder: Path) -> dict[str, str]:
    """``item name -> sha256 of its marker`` for every finished item under ``folder/items``."""
    root = Path(folder) / ITEMS
    if not root.is_dir():
        return {}
    return {p.name: file_sha256(p / DONE_MARKER) for p in sorted(root.iterdir())
            if not is_temporary(p.name) and is_done(p)}


def mark_done(folder: Path, *, stage: bool = False, **meta: Any) -> None:
    """Write the marker of ``folder`` (an item, or with ``stage`` a stage folder) listing its files' sha256."""
    folder = Path(folder)
    record = {"finished_at": time.time(), **meta, "files": folder_files(folder, skip_items=stage)}
    if stage:
        record["items"] = item_markers(folder)
    atomic_write_json(folder / DONE_MARKER, record)


def verify_done(folder: Path, *, stage: bool = False) -> list[str]:
    """What no longer matches the marker of a finished folder: ``"FILE: reason"`` lines (empty: intact).

    Every listed file is re-hashed; a file that is missing, changed, or present but unlisted is named.
    For a stage folder every finished item is checked the same way against its own marker.
    """
    folder = Path(folder)
    marker = read_marker(folder)
    if "files" not in marker:
        return [f"{DONE_MARKER}: lists no file digests (written by an older taskscope)"]
    problems = _compare(folder, marker["files"], folder_files(folder, skip_items=stage), prefix="")
    if stage:
        recorded, found = marker.get("items", {}), item_markers(folder)
        for name in sorted(recorded.keys() | found.keys()):
            where = f"{ITEMS}/{name}/{DONE_MARKER}"
            if name not in found:
                problems.append(f"{where}: missing")
            elif name not in recorded:
                problems.append(f"{where}: not listed in the stage's marker")
            elif recorded[name] != found[name]:
                problems.append(f"{where}: changed since the stage finished")
            else:
                problems += [f"{ITEMS}/{name}/{p}" for p in verify_done(folder / ITEMS / name)]
    return problems


def _compare(folder: Path, recorded: dict[str, str], found: dict[str, str], prefix: str) -> list[str]:
    problems = []
    for rel in sorted(recorded.keys() | found.keys()):
        if rel not in found:
            problems.append(f"{prefix}{rel}: missing")
        elif rel not in recorded:
            problems.append(f"{prefix}{rel}: not listed in {DONE_MARKER}")
        elif recorded[rel] != found[rel]:
            size = (folder / rel).stat().st_size
            problems.append(f"{prefix}{rel}: sha256 differs from the one recorded when it was written "
                            f"(changed or truncated; {size} bytes now)")
    return problems


def item_done(folder: Path) -> bool:
    """An item (one control model, one task's states) is done when its folder carries the marker."""
    return is_done(folder)


# ---------------------------------------------------------------- data the stages read
_digests: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    """`file_sha256`, memoised per (path, size, mtime) for this process: stat first, hash only what changed."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = file_sha256(path)
    return _digests[key]


def files_fingerprint(paths: list[Path], root: Path) -> dict[str, Any]:
    """``{"n_files", "sha256"}`` over the files' names (relative to ``root`` when inside it) and contents."""
    listing = {}
    for path in sorted(p.resolve() for p in paths):
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
        listing[name] = _cached_sha256(path)
    return {"n_files": len(listing), "sha256": digest(listing)}


def _files_under(location: Path) -> tuple[list[Path], Path]:
    if location.is_dir():
        return [p for p in location.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(location).parts)], location
    return [location], location.parent


def source_files(spec: str) -> tuple[list[Path], Path] | None:
    """The files a task source ``spec`` reads and the folder their names are relative to, or None.

    ``sni:PATH`` -> the file, or every file under the folder; ``templated:PATH`` -> the spec and the local
    record files its datasets name; ``builtin`` -> the builtin task modules; any other source whose path
    exists -> that file or folder.  Hugging Face records and unknown locations contribute nothing.
    """
    import yaml

    prefix, _, location = spec.partition(":")
    prefix = prefix.strip()
    if prefix == "builtin":
        from taskscope.tasks import builtin

        return _files_under(Path(builtin.__file__).parent)
    if not location:
        return None
    path = Path(location).expanduser()
    if not path.exists():
        return None
    if prefix == "templated" and path.is_file():
        files = [path]
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            raw = {}
        for dataset in raw.get("datasets", []) if isinstance(raw, dict) else []:
            records = dataset.get("records") if isinstance(dataset, dict) else None
            if isinstance(records, str) and (path.parent / records).is_file():
                files.append(path.parent / records)
        return files, path.parent
    return _files_under(path)


def data_fingerprint(spec: str | Path | None) -> dict[str, Any] | None:
    """Content hash of the files a task source (or a plain data file / folder) reads; None when it names none."""
    if spec is None:
        return None
    text = str(spec)
    found = source_files(text if ":" in text or text == "builtin" else f"file:{text}")
    if found is None:
        return None
    files, root = found
    return files_fingerprint(files, root.resolve())
