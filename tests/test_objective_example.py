"""docs/architecture.md's worked example of a new objective, written in this one file: L2-SP
(Li et al. 2018), which needs the starting weights θ⁰. It declares ``needs={"params0"}``; the
trainer keeps θ⁰ for it without knowing which objective asked, and the run trains."""
from __future__ import annotations

import json

import pytest
import torch

import alignkit
from alignkit.training.objectives import OBJECTIVES, register_objective
from test_train_trainer import cfg, env  # noqa: F401  (the tiny model and XNLI-format data)


def l2sp(ctx):
    """||θ − θ⁰||² over the encoder's trained parameters."""
    start = ctx.anchors.params0
    return sum(((p - start[name]) ** 2).sum() for name, p in ctx.model.named_parameters()
               if name.startswith("encoder.") and p.requires_grad)


@pytest.fixture
def l2sp_registered():
    register_objective("l2sp", "||θ − θ⁰||² over the encoder", needs={"params0"})(l2sp)
    yield
    OBJECTIVES.remove("l2sp")


def _encoder_drift(out, base) -> float:
    """||θ − θ⁰||² of the encoder between a checkpoint and the base model."""
    from safetensors.torch import load_file

    a, b = load_file(str(out / "model.safetensors")), load_file(str(base / "model.safetensors"))
    return sum(float(((a[k].float() - b[k].float()) ** 2).sum()) for k in b if k in a)


def test_an_objective_needing_the_starting_weights_trains_from_one_file(env, l2sp_registered):  # noqa: F811
    free = alignkit.train(cfg(env, "ft", variant="ft", epochs=2, max_steps=8), progress=False)
    held = alignkit.train(cfg(env, "l2sp", variant="ft+l2sp", weights={"l2sp": 50.0}, epochs=2, max_steps=8),
                          progress=False)
    recs = [json.loads(x) for x in (held.out / "metrics.jsonl").read_text().splitlines()]
    parts = [r["l2sp"] for r in recs if "l2sp" in r]
    assert parts and parts[0] == pytest.approx(0.0, abs=1e-6)   # θ = θ⁰ at the first step
    assert max(parts) > 0.0                                      # then it measures the drift
    assert json.loads((held.out / "alignkit_train.json").read_text())["weights"]["l2sp"] == 50.0
    # the penalty acts: the encoder ends nearer its starting weights than plain fine-tuning's
    assert _encoder_drift(held.out, env["model"]) < 0.5 * _encoder_drift(free.out, env["model"])


def test_an_objective_must_name_needs_the_trainer_provides():
    with pytest.raises(ValueError, match="does not provide"):
        register_objective("needs-nothing-real", "x", needs={"theta_zero"})(l2sp)
    assert "needs-nothing-real" not in OBJECTIVES


def test_the_trainer_names_no_objective():
    """The trainer reads what objectives need (objectives.NEEDS), never which objective runs."""
    import ast
    import inspect

    from alignkit.training import trainer

    names = set(OBJECTIVES) - {"task"}   # "task" is also the training task's config field
    literals = {n.value for n in ast.walk(ast.parse(inspect.getsource(trainer))) if isinstance(n, ast.Constant)}
    assert not names & literals, sorted(names & literals)
