"""The v2 measures as tasks (procrustes, margin, strong, mexa) end to end on a tiny model:
rows for every layer, the identities that tie them to the v1 measures, items that compare finds."""
from __future__ import annotations

import pandas as pd
import pytest

from alignkit.cli import main
from tinymodels import tiny_bert

TEST = "cat\tkedi\ndog\tköpek\nhouse\tev\nwater\tsu\nbig\tbüyük\nsmall\tküçük\nthe\tbir\nworld\tdünya\n" \
       "hello\tmerhaba\nis\tdır\non\tüstünde\n"
TRAIN = "a\tbir\nkatze\tkedi\nhund\tköpek\nhaus\tev\nwasser\tsu\n"
TUR = ["kedi", "köpek ev", "su ev", "kedi su", "köpek", "ev kedi köpek", "su", "ev"]
ENG = ["the cat", "a dog is on the house", "water house", "cat on water", "the dog", "house cat dog", "water",
       "a house"]
TASKS = "lexicon,tatoeba,procrustes,margin,tatoeba-margin,strong,tatoeba-strong,mexa"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2")
    (root / "en-tr.test.tsv").write_text(TEST, encoding="utf-8")
    (root / "en-tr.train.tsv").write_text(TRAIN, encoding="utf-8")
    tat = root / "tatoeba"
    tat.mkdir()
    (tat / "tatoeba.tur-eng.tur").write_text("\n".join(TUR) + "\n", encoding="utf-8")
    (tat / "tatoeba.tur-eng.eng").write_text("\n".join(ENG) + "\n", encoding="utf-8")
    for name, seed in (("a", 0), ("b", 1)):
        model = tiny_bert(root / name, seed=seed)
        assert main(["score", str(model), "--pairs", str(root / "en-tr.test.tsv"), "--pool-size", "30",
                     "--resamples", "30", "--tatoeba", str(tat), "--tasks", TASKS, "--cache-dir", str(root / "cache"),
                     "--out", str(root / f"run-{name}"), "--quiet"]) == 0
    return root


def _rows(root, name="a") -> pd.DataFrame:
    return pd.read_csv(root / f"run-{name}" / "results.csv", keep_default_na=False)


def _values(df, metric, method, direction=None):
    sel = df[(df.metric == metric) & (df.method == method)]
    if direction:
        sel = sel[sel.direction == direction]
    return sel.set_index(["layer", "direction"])["value"].astype(float)


def test_every_v2_measure_has_a_row_per_layer_and_direction(runs):
    df = _rows(runs)
    for metric, method, n in (("procrustes_p@1", "csls", 6), ("procrustes_p@1", "nn", 6), ("p@1", "margin", 6),
                              ("tatoeba_acc", "margin", 6), ("strong_p@1", "nn", 6), ("strong_p@1", "nn+center", 6),
                              ("tatoeba_strong_p@1", "nn", 6), ("tatoeba_strong_p@1", "nn+center", 6),
                              ("mexa", "", 3)):
        sel = df[(df.metric == metric) & (df.method == method)]
        assert len(sel) == n and sorted(set(sel.layer)) == [0, 1, 2], (metric, method)
        assert sel["value"].astype(float).between(0, 1).all()


def test_strong_p1_never_exceeds_weak_p1_and_mexa_never_exceeds_either_tatoeba_direction(runs):
    df = _rows(runs)
    words = df[df.lexicon != "tatoeba"]
    strong, weak = _values(words, "strong_p@1", "nn"), _values(words, "p@1", "nn")
    assert (strong <= weak[strong.index] + 1e-12).all()
    sent = df[df.lexicon == "tatoeba"]
    s_strong, s_weak = _values(sent, "tatoeba_strong_p@1", "nn"), _values(sent, "tatoeba_acc", "nn")
    assert (s_strong <= s_weak[s_strong.index] + 1e-12).all()
    mexa = df[df.metric == "mexa"].set_index("layer")["value"].astype(float)
    tat = sent[(sent.metric == "tatoeba_acc") & (sent.method == "nn")].groupby("layer")["value"].min()
    assert (mexa <= tat[mexa.index] + 1e-12).all()


def test_compare_finds_the_item_scores_of_every_v2_task(runs):
    assert main(["compare", str(runs / "run-a"), str(runs / "run-b"), "--out", str(runs / "cmp"), "--resamples",
                 "100", "--quiet"]) == 0
    cmp = pd.read_csv(runs / "cmp" / "comparison.csv")
    for metric, method in (("procrustes_p@1", "csls"), ("p@1", "margin"), ("tatoeba_acc", "margin"),
                           ("strong_p@1", "nn"), ("tatoeba_strong_p@1", "nn+center"), ("mexa", ""), ("p@1", "nn"), ("tatoeba_acc", "nn")):
        sel = cmp[(cmp.metric == metric) & (cmp.method.fillna("") == method)]
        assert len(sel) and sel["ci_low"].notna().all(), (metric, method)


def test_procrustes_without_a_train_split_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "en-tr.test.tsv").write_text(TEST, encoding="utf-8")
    model = tiny_bert(tmp_path / "m")
    rc = main(["score", str(model), "--pairs", str(tmp_path / "en-tr.test.tsv"), "--pool-size", "30",
               "--tasks", "procrustes", "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2
    assert "TRAIN split" in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.csv").exists()
