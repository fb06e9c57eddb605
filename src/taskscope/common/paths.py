"""Confined writes: names that become folder names, and paths that must stay inside a run folder.

Two checks, used at two moments:

* :func:`component_problem` - at config validation: a name used as one folder or file name (a study name,
  an experimental model, a task) must be a single path component: not empty, no ``/`` or ``\\``, not
  ``.`` or ``..``, no NUL byte.  It returns the reason, or ``None`` when the name is safe.
* :func:`inside` - where a run makes a folder: the path, resolved (symlinks and ``..`` followed), must lie
  inside the resolved run folder; otherwise :class:`UnsafePathError` names both.
"""

from __future__ import annotations

from pathlib import Path


class UnsafePathError(ValueError):
    """A path a run would write lies outside its run folder."""


def component_problem(name: str) -> str | None:
    """Why ``name`` cannot be used as a single folder / file name, or ``None`` when it can."""
    if not name:
        return "is empty"
    if name in (".", ".."):
        return f"{name!r} would name the folder itself or its parent"
    for bad in ("/", "\\", "\0"):
        if bad in name:
            return f"contains {bad!r}; it must be a single folder name (no path separators)"
    return None


def check_component(name: str) -> str:
    """``name`` unchanged when it is a safe single path component, else ``ValueError`` with the reason."""
    problem = component_problem(name)
    if problem is not None:
        raise ValueError(f"{name!r} {problem}")
    return name


def inside(root: str | Path, path: str | Path) -> Path:
    """``path`` (relative paths are taken under ``root``) resolved, when it lies inside the resolved ``root``."""
    base = Path(root).resolve()
    target = (base / path).resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(f"refusing to write {target}: it lies outside the run folder {base}")
    return target
