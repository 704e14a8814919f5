"""Spec strings and registries: components are named like ``jpeg(quality=75)``, never by path.

A spec is a call expression whose arguments are Python literals (numbers, strings, booleans,
``None``, tuples/lists of those): ``name(arg, key=value)``. It is parsed with :mod:`ast`
and :func:`ast.literal_eval`, never evaluated. ``repr`` of a registered dataclass is its
canonical spec (only fields that differ from their defaults are written), so
``build(repr(obj)) == obj`` for every registered component.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SpecError(ValueError):
    """A malformed spec, an unknown name, or arguments the component rejects."""


def parse_spec(spec: str) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """Splits ``"name(1, key='v')"`` into ``("name", (1,), {"key": "v"})``.

    A bare ``"name"`` is accepted as ``"name()"``.

    Raises:
        SpecError: if ``spec`` is not a call with literal-only arguments.
    """
    text = spec.strip()
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError as e:
        raise SpecError(f"malformed spec {spec!r}: {e.msg}") from None
    if isinstance(node, ast.Name):
        return node.id, (), {}
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise SpecError(f"malformed spec {spec!r}: expected name(arg=value, ...)")
    try:
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = {}
        for k in node.keywords:
            if k.arg is None:
                raise SpecError(f"malformed spec {spec!r}: ** is not allowed")
            kwargs[k.arg] = ast.literal_eval(k.value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise SpecError(f"malformed spec {spec!r}: arguments must be literals (numbers, strings, tuples)") from None
    for where, value in [*((f"argument {i + 1}", a) for i, a in enumerate(args)), *kwargs.items()]:
        bad = _non_finite(value)
        if bad is not None:
            raise SpecError(f"malformed spec {spec!r}: {where} holds {bad!r}, which is not a finite number "
                            "(too large, inf or nan)")
    return node.func.id, args, kwargs


def _non_finite(value: Any) -> Any:
    """The first non-finite number in a literal (inside tuples, lists, dicts), or None."""
    if isinstance(value, (float, complex)):
        return value if not math.isfinite(abs(value)) else None
    if isinstance(value, (tuple, list, set, frozenset)):
        return next((b for b in map(_non_finite, value) if b is not None), None)
    if isinstance(value, dict):
        return next((b for b in map(_non_finite, [*value.keys(), *value.values()]) if b is not None), None)
    return None


def format_spec(name: str, kwargs: dict[str, Any]) -> str:
    """``format_spec("jpeg", {"quality": 75}) == "jpeg(quality=75)"``."""
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def spec_of(obj: Any) -> str:
    """Canonical spec of a registered dataclass: its name and its non-default fields.

    Fields named in the class attribute ``spec_fields`` (the defining hyperparameter, e.g.
    JPEG's ``quality``) are always written, so ``jpeg(quality=75)`` never reads as ``jpeg()``.
    """
    always = getattr(obj, "spec_fields", ())
    kwargs = {}
    for f in dataclasses.fields(obj):
        if not f.init or not f.repr:
            continue
        value = getattr(obj, f.name)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        if default is dataclasses.MISSING or value != default or f.name in always:
            kwargs[f.name] = value
    return format_spec(obj.spec_name, kwargs)


def unknown_name(kind: str, name: str, known: list[str] | set[str] | dict) -> str:
    """``"unknown <kind> 'name'; did you mean ...? (known: ...)"``: close matches suggested."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (known: {', '.join(sorted(known)) or 'none'})"


def spec_repr(obj: Any) -> str:
    """``__repr__`` of registered dataclasses: their spec (see ``spec_of``)."""
    return spec_of(obj)


class Registry(Generic[T]):
    """Name -> factory, filled by the ``register`` decorator, read by ``build``.

    Args:
        kind: what it holds, for messages (``"transform"``).
        builtins: the modules holding the built-in entries, imported on first use. They are
            plugins named by string, not imports: ``defenses`` registers into ``bench.core``'s
            registries, so a static import the other way would be a cycle
            (``docs/design.md#architecture``).
        spec_repr: registered classes get ``spec_repr`` as their ``__repr__``, whatever their
            dataclass options: a submitted ``@dataclass`` without ``repr=False`` still prints
            (and is named on the board) by its spec, which rebuilds it. Set in the class body
            it also survives a ``@dataclass`` applied after registration (dataclasses keep a
            ``__repr__`` the class defines).
    """

    def __init__(self, kind: str, builtins: tuple[str, ...] = (), spec_repr: bool = False):
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}
        self._builtins = builtins
        self._spec_repr = spec_repr
        self.registered: list[str] = []
        """Every name in the order ``register`` was called (one can see what a module added)."""

    def _load(self) -> None:
        if self._builtins:
            modules, self._builtins = self._builtins, ()
            for m in modules:
                importlib.import_module(m)

    def register(self, name: str, replace: Callable[[Any], bool] | None = None) -> Callable[[type], type]:
        """Class decorator: registers ``cls`` under ``name`` and sets ``cls.spec_name``.

        ``replace(existing)`` says whether an entry already under ``name`` may be replaced
        (the sandbox's stand-ins replace an earlier load of the same submission's names).
        """

        def wrap(cls: type) -> type:
            existing = self._entries.get(name)
            reloaded = existing is not None and (existing.__module__, existing.__qualname__) == (
                cls.__module__, cls.__qualname__)  # the same module executed again (a submission re-loaded)
            if replace is not None and existing is not None and replace(existing):
                reloaded = True
            if existing is not None and existing is not cls and not reloaded:
                raise SpecError(f"{self.kind} {name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
            self.registered.append(name)
            cls.spec_name = name
            if self._spec_repr and isinstance(cls, type):
                cls.__repr__ = spec_repr
            self._entries[name] = cls
            return cls

        return wrap

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def get(self, name: str) -> Callable[..., T]:
        self._load()
        if name not in self._entries:
            raise SpecError(unknown_name(self.kind, name, self._entries))
        return self._entries[name]

    def build(self, spec: str) -> T:
        """Builds the component a spec names.

        Raises:
            SpecError: malformed spec, unknown name, or arguments the component rejects.
        """
        name, args, kwargs = parse_spec(spec)
        factory = self.get(name)
        try:
            return factory(*args, **kwargs)
        except TypeError as e:
            raise SpecError(f"bad arguments in {self.kind} spec {spec!r}: {e}") from None
        except ValueError as e:
            raise SpecError(f"invalid {self.kind} spec {spec!r}: {e}") from None
