"""Typer options built from a config dataclass's fields: defaults and help written once.

A config dataclass (e.g. :class:`alignkit.training.config.TrainConfig`) declares, per field,
its type, its default and, in ``dataclasses.field(metadata=...)``, how it shows on the
command line:

* ``help`` (str) -- the option's help text (the default is appended by click as
  ``[default: ...]``, so the text does not repeat it);
* ``flag`` (str, optional) -- the declaration, e.g. ``"--keep-state/--drop-state"``;
  default ``--`` + the field name with ``_`` -> ``-``;
* ``panel`` (str, optional) -- the ``rich_help_panel`` the option is listed under;
* ``cli`` (bool, optional) -- False keeps the field out of the command line (TOML/API only);
* ``parse`` (callable, optional) -- turns the option's string into the field's value
  (default: by type, below).

API:

* :func:`dataclass_parameters` ``(*classes, skip=()) -> list[inspect.Parameter]`` -- one
  keyword parameter per CLI field of each class (fields whose type is itself a dataclass
  are skipped: give that class separately). Every default is ``typer.Option(None, flag,
  ...)``: None means "not given", so a TOML file (or the dataclass) supplies the value.
  Annotations: ``Optional[str | int | float | bool]`` by the field's type; list-, tuple- and
  dict-typed fields take one comma-separated string.
* :func:`with_dataclass_options` ``(*classes, skip=())`` -- decorator for a command whose
  signature is ``def cmd(<own options>, **options)``: sets ``cmd.__signature__`` (what typer
  reads) to its own parameters followed by :func:`dataclass_parameters`; typer then passes
  the fields as keyword arguments into ``**options``.
* :func:`given_options` ``(options, *classes) -> dict`` -- the options actually given
  (None dropped), each string converted to its field's value: ``parse`` if set; for
  ``list``/``tuple`` fields :func:`alignkit.inputs.text.comma_list` (elements converted to
  ``int``/``float`` when the element type says so); others pass through (typer has already
  converted numbers and booleans). A bad element is an AlignkitError naming the flag.

Example::

    @app.command("score")
    @with_dataclass_options(ScoreConfig)
    def score_cmd(config: Optional[Path] = typer.Option(None, "--config"), **options) -> None:
        cfg = load_score_config(config, given_options(options, ScoreConfig))
"""
from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Any, Callable, Iterable, Optional

import typer

from alignkit.errors import AlignkitError
from alignkit.inputs.text import comma_list

_SCALARS = (str, int, float, bool)


def _strip_optional(tp: Any) -> Any:
    """``X | None`` / ``Optional[X]`` -> X; anything else unchanged."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _cli_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """(field, resolved type) of the fields of ``cls`` that appear on the command line."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = _strip_optional(hints[f.name])
        if not f.metadata.get("cli", True) or (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
            continue
        out.append((f, tp))
    return out


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _default_shown(f: dataclasses.Field) -> str | bool:
    """What ``[default: ...]`` shows: the dataclass default (lists comma-joined), or nothing."""
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
    else:
        return False
    if value is None or value == "" or value == () or value == [] or value == {}:
        return False
    if isinstance(value, bool):
        flag = _flag(f)
        if "/" in flag:  # a --on/--off pair: show the flag that is the default
            on, off = flag.split("/", 1)
            return (on if value else off).lstrip("-")
        return str(value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def dataclass_parameters(*classes: type, skip: Iterable[str] = ()) -> list[inspect.Parameter]:
    """One keyword-only ``inspect.Parameter`` per CLI field of ``classes`` (see the module docstring)."""
    skipped = set(skip)
    params: list[inspect.Parameter] = []
    seen: set[str] = set()
    for cls in classes:
        for f, tp in _cli_fields(cls):
            if f.name in skipped:
                continue
            if f.name in seen:
                raise ValueError(f"option {f.name!r} is declared by two of the dataclasses")
            seen.add(f.name)
            annotation = Optional[tp] if tp in _SCALARS else Optional[str]
            option = typer.Option(None, _flag(f), help=f.metadata.get("help"), show_default=_default_shown(f),
                                  rich_help_panel=f.metadata.get("panel"))
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                            annotation=annotation))
    return params


def with_dataclass_options(*classes: type, skip: Iterable[str] = ()) -> Callable[[Callable], Callable]:
    """Decorator: append the options of ``classes`` to a ``def cmd(..., **options)`` command's signature."""
    def deco(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        if len(own) == len(sig.parameters):
            raise TypeError(f"{fn.__name__} must take **options to receive the dataclass options")
        names = {p.name for p in own}
        extra = [p for p in dataclass_parameters(*classes, skip=skip) if p.name not in names]
        # typer reads inspect.signature(fn): own options first, then the fields, all keyword-only.
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        fn.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
        return fn
    return deco


def _convert(f: dataclasses.Field, tp: Any, value: Any) -> Any:
    parse = f.metadata.get("parse")
    if parse is not None:
        return parse(value)
    origin = typing.get_origin(tp) or tp
    if origin in (list, tuple) and isinstance(value, str):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        elem = args[0] if args else str
        items = comma_list(value)
        if elem in (int, float):
            try:
                items = [elem(x) for x in items]
            except ValueError:
                raise AlignkitError(f"{_flag(f)} {value!r}: every item must be a number "
                                    f"({elem.__name__}), e.g. 1,2") from None
        return tuple(items) if origin is tuple else items
    return value


def given_options(options: dict[str, Any], *classes: type) -> dict[str, Any]:
    """The options given on the command line (None dropped), converted to field values."""
    fields = {f.name: (f, tp) for cls in classes for f, tp in _cli_fields(cls)}
    out: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        out[name] = _convert(*fields[name], value) if name in fields else value
    return out


__all__ = ["dataclass_parameters", "with_dataclass_options", "given_options"]
