"""What each ``metric`` in a result row is: one :class:`Measure` per metric name, declared
by the task that produces it and registered in :data:`MEASURES`.

A measure declares its title, unit, direction (higher or lower is better, or neither), item
family (what one item of its item scores is), and where it appears: in ``summary.md``, in
the by-layer plots, as a headline of ``compare`` and of the study report, as an alignment
measure the study correlates with zero-shot accuracy. This module is a leaf (it imports
no stage of alignkit): tasks declare their measures here, and the views that summary,
plots, compare, items and the study read live downstream in :mod:`alignkit.results.measures`.

Register a new measurement with :func:`register_measure` (see docs/architecture.md)::

    register_measure(Measure("my_score", "My score", unit="cosine", family="pairs",
                             plots=(("", "My score by layer"),)))
"""
from __future__ import annotations

from dataclasses import dataclass

from alignkit.registry import Registry

#: item families: what one item of a measurement's item scores is
FAMILIES = {
    "pairs": "a lexicon test pair (source<TAB>target)",
    "words": "a query word of the lexicon test split",
    "sentences": "a parallel sentence (its index)",
    "": "no item scores (a statistic over the whole set, or a per-checkpoint accuracy)",
}


@dataclass(frozen=True)
class Measure:
    """Metadata of one measurement (``metric`` column value ``name``).

    - ``higher_is_better``: True / False (lower = languages less separated) / None (neither:
      a reference quantity such as ``bls_baseline``; never ranked for a "best layer").
    - ``family``: key of :data:`FAMILIES`; measures of one family share one item list, so
      their items line up (``bls_baseline`` per source word shares the P@k words).
    - ``summary``: shown in summary.md (best layer, CI, last layer).
    - ``plots``: ``(method, title)`` drawn by layer, one PNG each.
    - ``headline``: methods shown in comparison.md (order of registration, then these methods).
    - ``report``: methods shown in the study report's tables and answer (default: ``headline``).
    - ``alignment``: label when the study relates this measure (last layer, directions
      averaged) to zero-shot accuracy; ``alignment_method`` the method used.
    - ``percent``: values are shares printed as percent in reports.
    - ``short``: column label in report tables (default: the name); ``per_direction``: one
      report column per direction rather than directions averaged.
    """

    name: str
    title: str
    unit: str = ""
    higher_is_better: bool | None = True
    family: str = ""
    summary: bool = False
    plots: tuple[tuple[str, str], ...] = ()
    headline: tuple[str, ...] = ()
    report: tuple[str, ...] | None = None
    alignment: str = ""
    alignment_method: str = ""
    percent: bool = False
    short: str = ""
    per_direction: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"measure {self.name!r}: unknown item family {self.family!r}; use one of "
                             f"{', '.join(repr(f) for f in FAMILIES)}")

    @property
    def label(self) -> str:
        return self.short or self.name

    @property
    def report_methods(self) -> tuple[str, ...]:
        return self.headline if self.report is None else self.report


MEASURES: Registry[Measure] = Registry("measurement")


def register_measure(measure: Measure, *, replace: bool = False) -> Measure:
    """Add ``measure`` to :data:`MEASURES` (a second registration of a name is an error)."""
    return MEASURES.add(measure.name, measure, replace=replace)
