"""The one tidy row format every measurement is reported in (SPEC §2).

A result table is a pandas DataFrame with exactly :data:`COLUMNS`; reports and plots are
views of it. Build rows with :func:`row`, tables with :func:`to_frame`, write them with
:func:`write_csv` (atomic).
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterable

import pandas as pd

from alignkit import __version__
from alignkit.atomic import atomic_path

COLUMNS = [
    "model", "model_fingerprint", "layer", "pair", "direction", "metric", "method",
    "value", "ci_low", "ci_high", "n", "pool_size", "coverage", "lexicon", "mode",
    "alignkit_version",
]

TEXT_COLUMNS = ("model", "model_fingerprint", "pair", "direction", "metric", "method", "lexicon", "mode",
                "alignkit_version")

# Keys that identify "the same measurement" across runs/checkpoints (used to join runs).
MEASUREMENT_KEY = ["layer", "pair", "metric", "method", "direction"]


def row(*, model: str, model_fingerprint: str, metric: str, value: float, layer: int | None = None,
        pair: str = "", direction: str = "", method: str = "", ci_low: float = math.nan,
        ci_high: float = math.nan, n: int | None = None, pool_size: int | None = None,
        coverage: float = math.nan, lexicon: str = "", mode: str = "") -> dict[str, Any]:
    """One measurement as a dict with every column of :data:`COLUMNS`.

    ``layer`` is ``None`` (written as -1) for measurements that are not per layer
    (e.g. task accuracy of a fine-tuned classifier).
    """
    return {
        "model": model, "model_fingerprint": model_fingerprint,
        "layer": -1 if layer is None else int(layer), "pair": pair, "direction": direction,
        "metric": metric, "method": method, "value": float(value),
        "ci_low": float(ci_low), "ci_high": float(ci_high),
        "n": -1 if n is None else int(n), "pool_size": -1 if pool_size is None else int(pool_size),
        "coverage": float(coverage), "lexicon": lexicon, "mode": mode,
        "alignkit_version": __version__,
    }


def to_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> DataFrame with the canonical column order."""
    df = pd.DataFrame(list(rows), columns=COLUMNS)
    return df


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Atomically write a table (result rows, comparisons, ...): floats with 10 significant
    digits, no index. The one CSV writer of alignkit."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a result table written by :func:`write_csv`, checking its columns."""
    from alignkit.errors import AlignkitError

    try:
        df = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False,
                         na_values={c: ["nan", "NaN", ""] for c in COLUMNS if c not in TEXT_COLUMNS})
    except FileNotFoundError:
        raise AlignkitError(f"result file {path} does not exist; pass a results.csv written by alignkit") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise AlignkitError(f"result file {path} is not a readable CSV ({e}); pass a results.csv written by alignkit") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise AlignkitError(f"result file {path} lacks columns {', '.join(missing)}; pass a results.csv written by alignkit")
    return df
