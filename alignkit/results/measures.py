"""Views of the measurement registry (:mod:`alignkit.measures`) that summary, plots,
compare, items and the study read; none of them lists metric names.

The built-in measures are declared by the tasks that produce them, so each view first
imports :mod:`alignkit.tasks` (downstream reading what upstream declared). Rows themselves
stay the tidy format of SPEC §2 (:mod:`alignkit.results.rows`).
"""
from __future__ import annotations

from alignkit.measures import MEASURES, Measure


def _builtins() -> None:
    """The built-in measures are declared by the tasks that produce them (alignkit.tasks)."""
    import alignkit.tasks  # noqa: F401


def registered() -> list[Measure]:
    """Every registered measure (built-ins included), in registration order."""
    _builtins()
    return MEASURES.values()


def measure(name: str) -> Measure:
    """The registered measure ``name``; an unregistered name (a row from a newer or a plug-in
    version) gets neutral metadata: higher is better, its own item family, shown nowhere."""
    _builtins()
    m = MEASURES.get(name)
    return m if m is not None else Measure(name, name)


def item_family(name: str) -> str:
    """Item family of a metric (``""`` = none); an unregistered metric is its own family."""
    _builtins()
    m = MEASURES.get(name)
    return m.family if m is not None else name


def lower_is_better(name: str) -> bool:
    return measure(name).higher_is_better is False


def summary_metrics() -> list[str]:
    return [m.name for m in registered() if m.summary]


def layer_plots() -> list[tuple[str, str, str]]:
    """(metric, method, title) of every by-layer plot."""
    return [(m.name, method, title) for m in registered() for method, title in m.plots]


def headline_measures() -> list[tuple[str, str]]:
    """(metric, method) pairs headlined in comparison.md, in registration order."""
    return [(m.name, method) for m in registered() for method in m.headline]


def report_measures() -> list[tuple[str, str]]:
    """(metric, method) pairs in the study report's tables and answer."""
    return [(m.name, method) for m in registered() for method in m.report_methods]


def alignment_measures() -> list[tuple[str, str, str]]:
    """(label, metric, method) the study correlates with zero-shot accuracy."""
    return [(m.alignment, m.name, m.alignment_method) for m in registered() if m.alignment]


def lower_is_better_names() -> list[str]:
    return [m.name for m in registered() if m.higher_is_better is False]
