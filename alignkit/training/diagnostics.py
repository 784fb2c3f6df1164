"""Does EPT/APT act? Per-run diagnostics of the word-embedding table and the auxiliary losses.

* :class:`TableTracker` follows the table rows of the English training tokens during a run:
  which rows a step touched, how far each touched row moved from W⁰ (in units of ρ, the RMS
  row norm of W⁰), and what share of touched rows is at EPT's margin.
* :func:`embedding_lr_rule` -- the default table learning rate of EPT runs (SPEC §3 v2,
  docs/method.md): the step size at which Adam moves a row by m·ρ over the steps in which
  that row is in the batch.
* :func:`read_training_diagnostics` -- one flat dict per checkpoint (the study report's row):
  from ``training_diagnostics.json`` when the trainer wrote it, else rebuilt from
  ``metrics.jsonl`` and ``alignkit_train.json``; NaN for what does not apply (e.g. EPT
  numbers of ``ft``, anything of the frozen probe).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

DIAGNOSTICS_FILE = "training_diagnostics.json"
AT_MARGIN = 0.98  # a row hovering at the hinge sits within one step of m: count >= 0.98·m as "at the margin"
KEYS = ("variant", "steps", "embedding_lr", "ept_anchor", "attention_dropout", "row_movement_median_rho",
        "share_at_margin", "ept_loss_first", "ept_loss_last", "apt_loss_first", "apt_loss_last", "apt_loss_max",
        "best_dev_acc", "best_step")
NAN = float("nan")


REACH = 2.5  # aim the median touched row at 2.5·m: ‖sign(u)‖ projects ≈ 0.8 onto u, the task gradient does not
# point away from the anchor, and the hinge stops the push at m anyway (docs/method.md)


def embedding_lr_rule(margin: float, rho: float, touch_steps: float, hidden: int, reach: float = REACH) -> float:
    """Table learning rate that lets Adam push a row ``reach``·m·ρ in ``touch_steps`` steps -> float.

    Adam's update of a coordinate with a gradient of constant sign is ≈ lr (m̂/√v̂ = ±1), so
    a row moves ≈ lr·√H per step it is in the batch; ``touch_steps`` is the lr-schedule-
    weighted number of such steps of the median touched row (Σ of the schedule factor over
    the steps whose batch holds the row). lr = reach·margin·ρ / (touch_steps·√H), i.e.
    SPEC §3's m·ρ / (steps·√H) with steps = the median row's effective steps.
    """
    if not touch_steps > 0:
        raise ValueError("touch_steps must be > 0")
    return float(reach) * float(margin) * float(rho) / (float(touch_steps) * math.sqrt(int(hidden)))


class TableTracker:
    """Rows ``ids`` (sorted, unique English training-token ids) of the table, tracked from W⁰.

    ``rows0`` [n, H] (float32, CPU) is W⁰ at those ids. ``ept`` = (anchors, anchor name,
    margin) when EPT runs, so that :meth:`snapshot` can say which rows reached the margin.
    """

    def __init__(self, table: Tensor, ids: Tensor, rho: float, ept: tuple[Any, str, float] | None = None):
        self.ids = torch.as_tensor(ids, dtype=torch.long).cpu()
        self.rows0 = table.detach()[self.ids.to(table.device)].float().cpu().clone()
        self.rho = float(rho)
        self.ept = ept
        self.touched = torch.zeros(len(self.ids), dtype=torch.bool)

    def touch(self, token_ids: Tensor) -> None:
        """Mark the tracked rows among ``token_ids`` (any shape) as touched."""
        t = token_ids.reshape(-1).cpu()
        if not len(self.ids) or not t.numel():
            return
        pos = torch.searchsorted(self.ids, t).clamp_max(len(self.ids) - 1)
        self.touched[pos[self.ids[pos] == t]] = True

    def state(self) -> Tensor:
        return self.touched.clone()

    def load_state(self, touched: Tensor) -> None:
        if touched.shape == self.touched.shape:
            self.touched = touched.cpu().bool().clone()

    @torch.no_grad()
    def snapshot(self, table: Tensor) -> dict[str, float]:
        """Movement of the touched rows of ``table`` [V, H] from W⁰ -> dict.

        ``row_movement_median_rho`` / ``row_movement_q90_rho``: median / 90th percentile of
        ‖W[t] − W⁰[t]‖ / ρ over touched rows; ``share_at_margin``: share of touched rows whose
        push distance (‖W[t] − a_t‖ − ‖W⁰[t] − a_t‖)/ρ is >= 0.98·m (NaN without EPT);
        ``touched_rows``: how many.
        """
        ids = self.ids[self.touched]
        out = {"touched_rows": int(len(ids)), "row_movement_median_rho": NAN, "row_movement_q90_rho": NAN,
               "share_at_margin": NAN}
        if not len(ids):
            return out
        rows = table.detach()[ids.to(table.device)].float().cpu()
        move = (rows - self.rows0[self.touched]).norm(dim=1) / self.rho
        out["row_movement_median_rho"] = float(move.median())
        out["row_movement_q90_rho"] = float(torch.quantile(move, 0.9))
        if self.ept is not None:
            from alignkit.training.losses import push_distance

            anchors, name, margin = self.ept
            a, s = anchors.ept_targets(ids.to(anchors.table0.device), name)
            d = push_distance(rows, a.cpu(), self.rho, s.cpu())
            out["share_at_margin"] = float((d >= AT_MARGIN * margin).float().mean())
        return out


def _num(v: Any) -> float:
    try:
        return NAN if v is None else float(v)
    except (TypeError, ValueError):
        return NAN


def _read_jsonl(path: Path) -> list[dict]:
    recs = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                recs.append(json.loads(line))
            except ValueError:
                continue
    return recs


def summarize_metrics(records: list[dict], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The diagnostics dict of a run from its ``metrics.jsonl`` records and checkpoint meta."""
    cfg = meta.get("config") or {}
    obj = cfg.get("objective") or {}
    weights = meta.get("weights") or {}
    steps = [r for r in records if "loss" in r]
    devs = [r for r in records if r.get("event") == "dev"]
    best_step = meta.get("best_step")
    best = next((d for d in devs if d.get("step") == best_step), None)
    out: dict[str, Any] = {
        "variant": meta.get("variant", cfg.get("variant", "")),
        "steps": int(meta.get("steps", steps[-1]["step"] if steps else 0) or 0),
        "embedding_lr": _num(meta.get("embedding_lr")),
        "ept_anchor": obj.get("ept_anchor", "") if "ept" in weights else "",
        "attention_dropout": _num(meta.get("attention_dropout", cfg.get("attention_dropout"))),
        "best_dev_acc": _num(meta.get("best_dev_acc", meta.get("dev_acc"))),
        "best_step": int(best_step) if best_step is not None else -1,
    }
    for name in ("ept", "apt"):
        vals = [r[name] for r in steps if name in r]
        out[f"{name}_loss_first"] = _num(vals[0]) if vals else NAN
        out[f"{name}_loss_last"] = _num(vals[-1]) if vals else NAN
        if name == "apt":
            out["apt_loss_max"] = max(vals) if vals else NAN
    src = best if best is not None else {}
    last = steps[-1] if steps else {}
    for k in ("row_movement_median_rho", "row_movement_q90_rho", "share_at_margin", "touched_rows"):
        out[k] = _num(src.get(k))
        out[f"{k}_final"] = _num(last.get(k))
    out["ept_margin"] = _num(obj.get("ept_margin")) if "ept" in weights else NAN
    out["median_touch_steps"] = _num(meta.get("median_touch_steps"))
    return out


def write_training_diagnostics(out_dir: str | os.PathLike, diag: Mapping[str, Any]) -> Path:
    """Write ``training_diagnostics.json`` (NaN as null) atomically into ``out_dir``."""
    from alignkit.atomic import write_text

    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in diag.items()}
    p = Path(out_dir) / DIAGNOSTICS_FILE
    write_text(p, json.dumps(clean, indent=1))
    return p


def read_training_diagnostics(ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """Diagnostics of the run in ``ckpt_dir`` -> dict with at least :data:`KEYS` (NaN when n/a).

    ``row_movement_median_rho`` / ``share_at_margin`` describe the saved (best-on-dev)
    checkpoint; the ``*_final`` keys the end of training. Losses are log-window means
    (the first window is step 1 alone).
    """
    from alignkit.errors import AlignkitError
    from alignkit.inputs.finetuned import META_FILE

    d = Path(ckpt_dir)
    f = d / DIAGNOSTICS_FILE
    if f.is_file():
        raw = json.loads(f.read_text())
        out = {k: (NAN if v is None else v) for k, v in raw.items()}
    else:
        if not (d / META_FILE).is_file():
            raise AlignkitError(f"{d} is not a checkpoint written by `alignkit train` (no {META_FILE}); "
                                "pass a training output directory")
        meta = json.loads((d / META_FILE).read_text())
        from alignkit.training.checkpoint import METRICS_FILE

        out = summarize_metrics(_read_jsonl(d / METRICS_FILE), meta)
    for k in KEYS:
        out.setdefault(k, NAN)
    return out
