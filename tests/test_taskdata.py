"""XTREME-format sentence-pair readers: formats, file:line errors, splits."""
from __future__ import annotations

from pathlib import Path

import pytest

from alignkit.errors import AlignkitError
from alignkit.inputs.taskdata import (check_zero_shot_protocol, get_task, grouped_holdout_split, holdout_split,
                               read_pair_file, read_task_split, split_of, subsample, task_file)

XNLI_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "xnli"


def write(p: Path, text: str) -> Path:
    p.write_text(text, encoding="utf-8")
    return p


def test_xnli_rows_map_labels_to_task_order_and_keep_line_numbers(tmp_path):
    f = write(tmp_path / "dev-en.tsv", "A man sleeps.\tA person rests.\tentailment\n\n"
                                       "A dog.\tA cat.\tcontradiction\nX y.\tZ.\tneutral\n")
    ex = read_pair_file(f, "xnli")
    assert [e.label for e in ex] == [0, 2, 1]
    assert [e.line for e in ex] == [1, 3, 4]  # the blank line 2 is skipped, numbering kept
    assert ex[0].first == "A man sleeps." and ex[0].second == "A person rests."


def test_xnli_mt_contradictory_label_is_read_as_contradiction(tmp_path):
    f = write(tmp_path / "train-en.tsv", "a\tb\tcontradictory\n")
    assert read_pair_file(f, "xnli")[0].label == get_task("xnli").labels.index("contradiction")


def test_pawsx_accepts_xtreme_layout_and_original_header_with_id_column(tmp_path):
    xtreme = write(tmp_path / "dev-de.tsv", "Satz eins.\tSatz zwei.\t1\nA.\tB.\t0\n")
    original = write(tmp_path / "dev_2k.tsv", "id\tsentence1\tsentence2\tlabel\n7\tSatz eins.\tSatz zwei.\t1\n")
    assert [e.label for e in read_pair_file(xtreme, "pawsx")] == [1, 0]
    ex = read_pair_file(original, "paws-x")
    assert len(ex) == 1 and ex[0].first == "Satz eins." and ex[0].line == 2


@pytest.mark.parametrize("content, fragment", [
    ("a\tb\tentailment\nonly two\tfields\n", ":2: expected 3 tab-separated fields"),
    ("a\tb\tentailment\nc\td\tmaybe\n", ":2: label 'maybe' is not a xnli label"),
    ("a\t\tneutral\n", ":1: empty sentence"),
    ("\n\n", "holds no example"),
])
def test_bad_lines_are_reported_with_file_and_line(tmp_path, content, fragment):
    f = write(tmp_path / "dev-en.tsv", content)
    with pytest.raises(AlignkitError) as e:
        read_pair_file(f, "xnli")
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_wrong_label_set_names_the_task_fix(tmp_path):
    f = write(tmp_path / "dev-en.tsv", "a\tb\t1\n")  # a PAWS-X file read as XNLI
    with pytest.raises(AlignkitError, match=r"dev-en.tsv:1: label '1'.*--task"):
        read_pair_file(f, "xnli")


def test_missing_files_dirs_and_tasks_are_one_line_errors(tmp_path):
    with pytest.raises(AlignkitError, match="does not exist"):
        read_pair_file(tmp_path / "nope.tsv", "xnli")
    with pytest.raises(AlignkitError, match="data directory"):
        task_file(tmp_path / "nodir", "xnli", "test", "sw")
    write(tmp_path / "test-en.tsv", "a\tb\tneutral\n")
    with pytest.raises(AlignkitError, match=r"test-sw.tsv does not exist \(found: test-en.tsv\)"):
        read_task_split(tmp_path, "xnli", "test", "sw")
    with pytest.raises(AlignkitError, match="unknown task"):
        get_task("mnli")


def test_non_utf8_file_is_rejected(tmp_path):
    f = tmp_path / "dev-en.tsv"
    f.write_bytes("caf\xe9\tb\tneutral\n".encode("latin-1"))
    with pytest.raises(AlignkitError, match="not UTF-8"):
        read_pair_file(f, "xnli")


def test_holdout_split_is_seeded_disjoint_and_complete(tmp_path):
    f = write(tmp_path / "dev-en.tsv", "".join(f"p{i}\th{i}\tneutral\n" for i in range(50)))
    ex = read_pair_file(f, "xnli")
    tr, dv = holdout_split(ex, 0.2, seed=3)
    assert len(dv) == 10 and len(tr) == 40
    assert {e.line for e in tr}.isdisjoint({e.line for e in dv})
    assert {e.line for e in tr} | {e.line for e in dv} == set(range(1, 51))
    assert holdout_split(ex, 0.2, seed=3) == (tr, dv)
    assert holdout_split(ex, 0.2, seed=4)[1] != dv
    with pytest.raises(AlignkitError):
        holdout_split(ex, 1.5, seed=0)


def test_grouped_holdout_keeps_every_premise_on_one_side(tmp_path):
    # 40 premises with 3 hypotheses each, interleaved so premise order != row order
    rows = [f"p{(i * 7) % 40}\th{i}\t{('entailment', 'neutral', 'contradiction')[i % 3]}\n" for i in range(120)]
    ex = read_pair_file(write(tmp_path / "test-en.tsv", "".join(rows)), "xnli")
    tr, dv = grouped_holdout_split(ex, 0.1, seed=0)
    assert {e.first for e in tr}.isdisjoint({e.first for e in dv})
    assert len({e.first for e in dv}) == 4 and len(dv) == 12 and len(tr) == 108
    assert sorted(e.line for e in tr + dv) == list(range(1, 121))
    assert [e.line for e in dv] == sorted(e.line for e in dv)  # file order kept
    assert grouped_holdout_split(ex, 0.1, seed=0) == (tr, dv)
    assert grouped_holdout_split(ex, 0.1, seed=1)[1] != dv
    with pytest.raises(AlignkitError, match="dev fraction"):
        grouped_holdout_split(ex, 0.0, seed=0)


@pytest.mark.skipif(not XNLI_DIR.is_dir(), reason="shared XNLI data not present")
def test_v2_protocol_split_of_real_test_en_holds_out_167_whole_premises():
    ex = read_task_split(XNLI_DIR, "xnli", "test", "en")
    tr, dv = grouped_holdout_split(ex, 0.1, seed=0)
    assert len(ex) == 5010 and len(dv) == 501 and len(tr) == 4509
    assert len({e.first for e in dv}) == 167
    assert {e.first for e in tr}.isdisjoint({e.first for e in dv})
    dev_premises = {e.first for e in read_task_split(XNLI_DIR, "xnli", "dev", "en")}
    assert dev_premises.isdisjoint({e.first for e in ex})  # zero-shot split shares no premise


def test_training_and_evaluating_on_one_split_is_refused():
    assert split_of("/x/test-en.tsv") == ("test", "en") and split_of("/x/mine.txt") is None
    with pytest.raises(AlignkitError, match="same split 'test'") as e:
        check_zero_shot_protocol("/data/xnli/test-en.tsv", "test")
    assert "\n" not in str(e.value)
    check_zero_shot_protocol("/data/xnli/test-en.tsv", "dev")  # the v2 protocol
    check_zero_shot_protocol("/data/xnli/dev-en.tsv", "test")
    check_zero_shot_protocol("/data/mine.tsv", "test")  # not an XTREME name: nothing to compare


def test_subsample_picks_the_same_rows_in_every_language(tmp_path):
    a = read_pair_file(write(tmp_path / "test-en.tsv", "".join(f"e{i}\tx\tneutral\n" for i in range(30))), "xnli")
    b = read_pair_file(write(tmp_path / "test-sw.tsv", "".join(f"s{i}\tx\tneutral\n" for i in range(30))), "xnli")
    sa, sb = subsample(a, 7, seed=1), subsample(b, 7, seed=1)
    assert [e.line for e in sa] == [e.line for e in sb] and len(sa) == 7
    assert subsample(a, None) == a


@pytest.mark.skipif(not XNLI_DIR.is_dir(), reason="shared XNLI data not present")
def test_real_xnli_files_read_with_parallel_labels():
    en = read_task_split(XNLI_DIR, "xnli", "dev", "en")
    sw = read_task_split(XNLI_DIR, "xnli", "dev", "sw")
    assert len(en) == len(sw) == 2490
    assert [e.label for e in en] == [e.label for e in sw]
    assert {e.label for e in en} == {0, 1, 2}
