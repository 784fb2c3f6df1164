"""docs/architecture.md's worked example of a new measurement and task, written as the docs
write it (no item file handling in the task): its rows get item scores, and ``compare`` pairs
them into confidence intervals."""
from __future__ import annotations

import numpy as np
import pytest

import alignkit
from alignkit import Measure, Task, TaskMetadata, register_measure, register_task
from alignkit.measures import MEASURES
from alignkit.tasks import TASKS
from tinymodels import tiny_bert

LEX = "cat\tkedi\ndog\tköpek\nhouse\tev\nwater\tsu\nthe\tbir\nworld\tdünya\nhello\tmerhaba\nis\tdır\non\tüstünde\n" \
      "big\tbüyük\nsmall\tküçük\n"


class PairCosineTask(Task):
    metadata = TaskMetadata(name="toy-pair-cosine-doc", type="word-similarity", description="docs example",
                            measures=("toy_pair_cos_doc",), needs_lexicons=True)

    def prepare(self, cfg, lexicons):          # validate inputs before any model runs
        return list(lexicons)                  # the units evaluate() is called with

    def evaluate(self, ctx, lex):              # one unit, one encoder (ctx.enc)
        sources, targets = [s for s, _ in lex.pairs], [t for _, t in lex.pairs]
        X = ctx.word_vectors(sources, lex.src_lang)      # [layers, words, dim], cached
        Y = ctx.word_vectors(targets, lex.tgt_lang)
        ids = [f"{s}\t{t}" for s, t in lex.pairs]
        for li, layer in enumerate(ctx.layers):
            x, y = X[li].astype(np.float64), Y[li].astype(np.float64)
            scores = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
            ctx.add_row(layer=layer, pair=lex.pair, metric="toy_pair_cos_doc", value=scores.mean(),
                        n=len(scores), direction="en->tr", lexicon=lex.name)
            ctx.add_items(lex.pair, layer, "toy_pair_cos_doc", "", "en->tr", ids, scores)


@pytest.fixture
def registered():
    register_measure(Measure("toy_pair_cos_doc", "Toy pair cosine", unit="cosine", family="pairs",
                             summary=True, headline=("",)))
    register_task(PairCosineTask)
    yield
    MEASURES.remove("toy_pair_cos_doc")
    TASKS.remove("toy-pair-cosine-doc")


def test_the_docs_task_gets_item_scores_and_compare_intervals_without_writing_files(registered, tmp_path):
    (tmp_path / "en-tr.test.tsv").write_text(LEX, encoding="utf-8")
    opts = dict(pairs=[str(tmp_path / "en-tr.test.tsv")], tasks=["toy-pair-cosine-doc"], pool_size=0,
                n_resamples=20, cache_dir=str(tmp_path / "cache"))
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        df = alignkit.score(str(tiny_bert(tmp_path / f"m{seed}", seed=seed)), out=run, progress=False, **opts)
        fp = df["model_fingerprint"].iloc[0]
        with np.load(run / "items" / fp / "toy-pair-cosine-doc" / "en-tr.npz") as z:
            assert z["0|toy_pair_cos_doc||en->tr"].shape == (11,)
            # the items are what the row averages
            row = df[(df["layer"] == 0)]["value"].iloc[0]
            assert float(z["0|toy_pair_cos_doc||en->tr"].astype(np.float64).mean()) == pytest.approx(row, rel=1e-5)
        runs.append(run)
    cmp = alignkit.compare_runs([str(r) for r in runs], n_resamples=200)
    rows = cmp[cmp["metric"] == "toy_pair_cos_doc"]
    assert len(rows) == 3 and rows["ci_low"].notna().all() and (rows["ci_low"] < rows["ci_high"]).all()
    assert ((rows["ci_low"] <= rows["diff"]) & (rows["diff"] <= rows["ci_high"])).all()


def test_a_task_that_reuses_a_writer_for_one_pair_keeps_every_measurement(registered, tmp_path):
    """ctx.items(pair) is one writer per task and pair within a unit: two calls do not lose
    the first call's arrays (each used to start an empty file)."""
    from alignkit.scoring import ScoreConfig, ScoringContext

    class Enc:
        fingerprint, num_layers, device = "fp", 2, "cpu"

    ctx = ScoringContext(Enc(), ScoreConfig(), tmp_path, None, {}, False)
    ctx.task = "toy-pair-cosine-doc"
    ctx.add_items("en-tr", 0, "toy_pair_cos_doc", "", "en->tr", ["a", "b"], [0.1, 0.2])
    ctx.add_items("en-tr", 1, "toy_pair_cos_doc", "", "en->tr", ["a", "b"], [0.3, 0.4])
    ctx.write_items()
    with np.load(tmp_path / "items" / "fp" / "toy-pair-cosine-doc" / "en-tr.npz") as z:
        assert {"0|toy_pair_cos_doc||en->tr", "1|toy_pair_cos_doc||en->tr", "ids|pairs|en->tr"} <= set(z.files)
