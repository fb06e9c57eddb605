"""One small registry by short string id, used by every plug-in family.

A family (task sources, samplers, measures, kernels, executors, ...) owns one :class:`Registry`::

    SAMPLERS = Registry("sampler", entry_point_group="taskscope.samplers", reserved=("sizes", "seed"))

    @SAMPLERS.register("uniform")
    class UniformSampler(TaskSampler): ...

Lookup order for a name: members registered so far; then the family's built-in modules (imported on
first use, so start-up stays cheap); then installed third-party plug-ins, found through the
``importlib.metadata`` entry points of the family's group (``name = "package.module:Object"``: loading
it registers ``Object`` under ``name``).  Registering a name twice with different objects raises
:class:`RegistryError` (a plug-in cannot take a built-in's name); an unknown name raises one with a "did you
mean".

Each member has a pydantic parameter model (:meth:`Registry.params_model`): the member's own
``Params`` model when it declares one, else one built from the keyword parameters of its constructor
(``__init__`` up the class hierarchy while it forwards ``**kwargs``), minus the family's ``reserved``
names that the framework itself passes.  :meth:`Registry.check_params` validates a config's plug-in
section against it before any work starts.

This module is a leaf: it imports nothing of taskscope, so every package (``tasks/`` and
``similarity/`` included) may use it.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import typing
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

T = TypeVar("T")


class RegistryError(ValueError):
    """A duplicate registration, an unknown name, or parameters a member does not take."""


class Registry(Mapping[str, T], Generic[T]):
    """Members of one plug-in family by short id; a read-only mapping once filled.

    Parameters
    ----------
    kind: what a member is, for messages ("sampler", "task source", ...).
    entry_point_group: the ``importlib.metadata`` group third-party plug-ins register under.
    builtin_modules: modules whose import registers the built-in members (imported on first lookup).
    reserved: constructor parameters the framework passes itself; not part of the parameter model.
    """

    def __init__(self, kind: str, *, entry_point_group: str, builtin_modules: tuple[str, ...] = (),
                 reserved: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.builtin_modules = builtin_modules
        self.reserved = frozenset(reserved)
        self._members: dict[str, T] = {}
        self._builtins_loaded = not builtin_modules
        self._plugins_loaded = False

    # -- registration ------------------------------------------------------------------------------------
    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: add the decorated object under ``name`` (sets ``obj.name`` on classes)."""

        def decorate(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorate

    def add(self, name: str, obj: T) -> None:
        """Add ``obj`` under ``name``; a different object under a taken name raises :class:`RegistryError`."""
        if not name or not isinstance(name, str):
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")
        present = self._members.get(name)
        if present is not None and present is not obj:
            raise RegistryError(f"{self.kind} {name!r} is already registered by {_describe(present)}; "
                                f"cannot register {_describe(obj)} under the same name")
        if isinstance(obj, type):
            obj.name = name  # type: ignore[attr-defined]
        self._members[name] = obj

    def remove(self, name: str) -> None:
        """Drop ``name`` (for tests and interactive sessions that re-register a member)."""
        self._members.pop(name, None)

    # -- lookup ------------------------------------------------------------------------------------------
    def lookup(self, name: str) -> T:
        """The member ``name``, loading built-ins and plug-ins as needed; unknown names raise one line."""
        if name not in self._members:
            self._load_builtins()
        if name not in self._members:
            self._load_plugins()
        try:
            return self._members[name]
        except KeyError:
            raise RegistryError(f"unknown {self.kind} {name!r}; {self.suggestion(name)}") from None

    def suggestion(self, name: str) -> str:
        """"did you mean 'x'?" for a close name, else the list of known names."""
        close = difflib.get_close_matches(str(name), self.names(), n=1)
        return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(self.names()) or 'none'}"

    def names(self) -> list[str]:
        """Every member's name, built-ins and installed plug-ins included, sorted."""
        self._load_builtins()
        self._load_plugins()
        return sorted(self._members)

    def __getitem__(self, name: str) -> T:
        try:
            return self.lookup(name)
        except RegistryError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.lookup(name)
        except RegistryError:
            return False
        return True

    # -- parameters --------------------------------------------------------------------------------------
    def params_model(self, name: str) -> type[BaseModel]:
        """The pydantic model of the parameters a config may set for member ``name``."""
        member = self.lookup(name)
        declared = getattr(member, "Params", None)
        if isinstance(declared, type) and issubclass(declared, BaseModel):
            return declared
        return _model_from_signature(f"{name}_params", member, self.reserved)

    def check_params(self, name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate ``params`` for member ``name``; returns them as given, raises one line naming the field."""
        params = dict(params or {})
        try:
            self.params_model(name).model_validate(params)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            where = f"parameter {field!r}: " if field else ""
            raise RegistryError(f"{self.kind} {name!r}: {where}{message}") from None
        return params

    # -- loading -----------------------------------------------------------------------------------------
    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for module in self.builtin_modules:
            importlib.import_module(module)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for point in entry_points(group=self.entry_point_group):
            try:
                obj = point.load()
            except Exception as err:  # a broken third-party plug-in names itself, never hides
                raise RegistryError(f"{self.kind} plug-in {point.name!r} ({point.value}) failed to load: {err}") from err
            self.add(point.name, obj)  # the same object its module registered is fine; a clash raises

    def reload_plugins(self) -> None:
        """Look for installed plug-ins again (after installing one into a running session)."""
        self._plugins_loaded = False
        self._load_plugins()


def _describe(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _keyword_parameters(member: object) -> tuple[dict[str, tuple[Any, Any]], bool]:
    """``{name: (annotation, default)}`` of the constructor chain; and whether it takes other keywords."""
    functions = [cls.__init__ for cls in member.__mro__ if "__init__" in vars(cls) and cls is not object] \
        if isinstance(member, type) else [member]
    fields: dict[str, tuple[Any, Any]] = {}
    for function in functions:
        signature = inspect.signature(function)
        try:
            hints = typing.get_type_hints(function)
        except Exception:  # an annotation that does not resolve: validate that field loosely
            hints = {}
        forwards = False
        for parameter in list(signature.parameters.values())[1 if isinstance(member, type) else 0:]:
            if parameter.kind is parameter.VAR_KEYWORD:
                forwards = True
            elif parameter.kind is not parameter.VAR_POSITIONAL and parameter.name not in fields:
                default = ... if parameter.default is parameter.empty else parameter.default
                fields[parameter.name] = (hints.get(parameter.name, Any), default)
        if not forwards:
            return fields, False
    return fields, bool(functions)  # no constructor of its own (object's): takes no parameters


def _model_from_signature(model_name: str, member: object, reserved: frozenset[str]) -> type[BaseModel]:
    fields, open_ended = _keyword_parameters(member)
    fields = {name: spec for name, spec in fields.items() if name not in reserved}
    config = ConfigDict(extra="allow" if open_ended else "forbid", arbitrary_types_allowed=True)
    return create_model(model_name, __config__=config, **fields)  # type: ignore[call-overload]
