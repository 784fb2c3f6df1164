"""Extending alignkit from outside: a measurement and a task registered in this file alone
appear in results.csv, summary.md, the item scores and `compare` output."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alignkit.cli import main
from alignkit.errors import AlignkitError
from alignkit.registry import Registry
from alignkit.measures import MEASURES, Measure, register_measure
from alignkit.tasks import TASKS, Task, TaskMetadata, register_task
from tinymodels import tiny_bert

LEX = "cat\tkedi\ndog\tköpek\nhouse\tev\nwater\tsu\nthe\tbir\nworld\tdünya\nhello\tmerhaba\nis\tdır\non\tüstünde\n" \
      "big\tbüyük\nsmall\tküçük\n"


class PairCosineTask(Task):
    """Mean cosine of each test pair's source and target vectors, per layer: by definition
    the same number as the lexicon task's ``bls_raw``."""

    metadata = TaskMetadata(name="toy-pair-cosine", type="word-similarity", description="test task",
                            measures=("toy_pair_cos",), needs_lexicons=True)

    def prepare(self, cfg, lexicons):
        return list(lexicons)

    def evaluate(self, ctx, lex):
        src = [s for s, _ in lex.pairs]
        tgt = [t for _, t in lex.pairs]
        X, Y = ctx.word_vectors(sorted(set(src)), lex.src_lang), ctx.word_vectors(sorted(set(tgt)), lex.tgt_lang)
        si = {w: i for i, w in enumerate(sorted(set(src)))}
        ti = {w: i for i, w in enumerate(sorted(set(tgt)))}
        items = ctx.items(lex.pair)
        ids = [f"{s}\t{t}" for s, t in lex.pairs]
        for li, layer in enumerate(ctx.layers):
            x = X[li][[si[s] for s in src]].astype(np.float64)
            y = Y[li][[ti[t] for t in tgt]].astype(np.float64)
            cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
            ctx.add_row(layer=layer, pair=lex.pair, metric="toy_pair_cos", value=cos.mean(), n=len(cos),
                        direction=f"{lex.src_lang}->{lex.tgt_lang}", lexicon=lex.name)
            if items:
                items.add(layer, "toy_pair_cos", "", f"{lex.src_lang}->{lex.tgt_lang}", ids, cos)
        if items:
            items.write()


@pytest.fixture
def registered():
    register_measure(Measure("toy_pair_cos", "Toy pair cosine", unit="cosine", family="pairs", summary=True,
                             headline=("",)))
    register_task(PairCosineTask)
    yield
    MEASURES.remove("toy_pair_cos")
    TASKS.remove("toy-pair-cosine")


def _score(root, model, out, *extra):
    return main(["score", str(model), "--pairs", str(root / "en-tr.test.tsv"), "--pool-size", "30",
                 "--resamples", "30", "--cache-dir", str(root / "cache"), "--out", str(out), "--quiet", *extra])


def test_a_measurement_and_task_registered_in_a_test_file_reach_results_summary_items_and_compare(
        registered, tmp_path):
    (tmp_path / "en-tr.test.tsv").write_text(LEX, encoding="utf-8")
    a, b = tiny_bert(tmp_path / "a", seed=0), tiny_bert(tmp_path / "b", seed=1)
    tasks = ["--tasks", "lexicon,toy-pair-cosine"]
    assert _score(tmp_path, a, tmp_path / "ra", *tasks) == 0
    assert _score(tmp_path, b, tmp_path / "rb", *tasks) == 0
    df = pd.read_csv(tmp_path / "ra" / "results.csv")
    toy = df[df["metric"] == "toy_pair_cos"].set_index("layer")["value"]
    raw = df[df["metric"] == "bls_raw"].set_index("layer")["value"]
    assert list(toy.index) == [0, 1, 2]
    np.testing.assert_allclose(toy, raw[toy.index], rtol=1e-5)  # the same quantity, computed twice
    assert "| toy_pair_cos |" in (tmp_path / "ra" / "summary.md").read_text()
    fp = df["model_fingerprint"].iloc[0]
    assert (tmp_path / "ra" / "items" / fp / "toy-pair-cosine" / "en-tr.npz").is_file()
    assert main(["compare", str(tmp_path / "ra"), str(tmp_path / "rb"), "--out", str(tmp_path / "cmp"),
                 "--resamples", "200", "--quiet"]) == 0
    cmp = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    rows = cmp[cmp["metric"] == "toy_pair_cos"]
    assert len(rows) == 3 and rows["ci_low"].notna().all()  # item-paired CIs: the items were found
    assert (rows["ci_low"] <= rows["diff"]).all() and (rows["diff"] <= rows["ci_high"]).all()
    assert "| toy_pair_cos |" in (tmp_path / "cmp" / "comparison.md").read_text()


def test_default_tasks_are_the_lexicon_task_and_tatoeba_only_when_its_folder_is_given():
    from alignkit.scoring import ScoreConfig

    assert ScoreConfig().selected_tasks() == ["lexicon"]
    assert ScoreConfig(tatoeba_dir="x").selected_tasks() == ["lexicon", "tatoeba"]
    assert ScoreConfig(tasks="tatoeba").selected_tasks() == ["tatoeba"]


@pytest.mark.parametrize("kw, flag", [(dict(pool_size=-5), "--pool-size"), (dict(mode="bag"), "--mode"),
                                      (dict(pooling="max"), "--pooling"), (dict(n_resamples=-1), "--resamples"),
                                      (dict(tasks=["lexicon", "nope"]), "--tasks"),
                                      (dict(tatoeba_langs=["tr"]), "--tatoeba")])
def test_score_config_refuses_bad_values_at_construction(kw, flag):
    from alignkit.scoring import ScoreConfig

    with pytest.raises(AlignkitError, match=flag):
        ScoreConfig(**kw)


def test_negative_pool_size_on_the_command_line_exits_2_with_one_line(tmp_path, capsys):
    assert main(["score", "--pool-size", "-5", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --pool-size -5") and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_registry_refuses_a_second_registration_and_names_known_entries_on_a_miss():
    reg = Registry("colour")
    reg.add("red", 1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("red", 2)
    reg.add("red", 3, replace=True)
    assert reg["red"] == 3
    with pytest.raises(AlignkitError, match="unknown colour 'blue'; use one of red"):
        reg["blue"]


def test_every_metric_a_builtin_task_declares_is_registered_with_a_known_item_family():
    from alignkit.measures import FAMILIES, MEASURES as REG
    from alignkit.tasks import task_names

    for name in task_names():
        for metric in TASKS[name].metadata.measures:
            assert metric in REG, (name, metric)
            assert REG[metric].family in FAMILIES
