"""RS-DA (Huang et al. 2021) with WordNet 3.0 synonyms: the reader, the seeded augmentation, the variants."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import torch

from alignkit.errors import AlignkitError
from alignkit.training.objectives import resolve_variant
from alignkit.training.rsda import SynonymAugmenter, rsda_rng
from alignkit.training.synonyms import find_wordnet_dir, load_synonyms, parse_synonyms, synset_lemmas

try:
    find_wordnet_dir()
    HAVE_WORDNET = True
except AlignkitError:
    HAVE_WORDNET = False
needs_wordnet = pytest.mark.skipif(not HAVE_WORDNET, reason="WordNet 3.0 not installed here "
                                   "(apt-get install wordnet-base; CI installs it from .ci/apt-packages.txt)")

HEADER = "  1 This software and database is being provided to you, the LICENSEE, by  \n"


def write_wordnet(d: Path, synsets: dict[str, list[list[str]]]) -> Path:
    """A WordNet-format dict dir: one data.<pos> file per part of speech, one line per synset (wndb(5WN))."""
    d.mkdir(parents=True, exist_ok=True)
    for pos in ("noun", "verb", "adj", "adv"):
        lines = [HEADER]
        for k, words in enumerate(synsets.get(pos, [])):
            ws = " ".join(f"{w} 0" for w in words)
            lines.append(f"{k:08d} 05 {pos[0]} {len(words):02x} {ws} 000 | a gloss\n")
        (d / f"data.{pos}").write_text("".join(lines))
    return d


# ----------------------------------------------------------------------------- the reader


def test_synset_line_parsing_follows_the_wndb_format():
    line = "02958343 06 n 05 car 0 auto 0 automobile 0 machine 1 motorcar 0 076 @ 03791235 n 0000 | a motor vehicle"
    assert synset_lemmas(line) == ["car", "auto", "automobile", "machine", "motorcar"]
    assert synset_lemmas(HEADER) == []
    # the word count is hexadecimal; adjective markers are stripped; case is folded
    many = "00000001 00 s 0b " + " ".join(f"W{i}(p) 0" for i in range(11)) + " 000 | x"
    assert synset_lemmas(many) == [f"w{i}" for i in range(11)]


def test_synonyms_are_the_other_single_word_lemmas_of_every_synset():
    table = parse_synonyms([[
        "00000001 05 n 03 car 0 auto 0 motor_vehicle 0 000 | x",
        "00000002 05 n 02 car 0 railcar 0 000 | x",
        "00000003 05 n 02 e-mail 0 email 0 000 | x",
        "00000004 05 n 01 lonely 0 000 | x",
    ]])
    assert table["car"] == ("auto", "railcar")
    assert table["auto"] == ("car",) and table["railcar"] == ("car",)
    assert "motor_vehicle" not in table and "e-mail" not in table
    assert "email" not in table  # its only synonym was not a single word
    assert "lonely" not in table  # a one-lemma synset gives no synonym


def test_missing_wordnet_gives_one_line_error_naming_the_fix(tmp_path):
    with pytest.raises(AlignkitError) as e:
        load_synonyms(tmp_path / "nowhere")
    msg = str(e.value)
    assert "\n" not in msg and "wordnet-base" in msg and "directory" in msg


def test_a_wordnet_directory_can_be_passed_and_is_cached(tmp_path):
    d = write_wordnet(tmp_path / "wn", {"adj": [["big", "large"]]})
    t = load_synonyms(d)
    assert t == {"big": ("large",), "large": ("big",)}
    assert load_synonyms(d) is t


@needs_wordnet
def test_wordnet_3_lists_its_known_synonyms():
    t = load_synonyms()
    # WordNet 3.0, synset 02958343-n: car, auto, automobile, machine, motorcar
    assert {"auto", "automobile", "machine", "motorcar"} <= set(t["car"])
    assert "car" not in t["car"]
    assert set(t["happy"]) == {"felicitous", "glad"}  # "well-chosen" is dropped (not letters only)
    assert "the" not in t and "of" not in t  # function words are not in WordNet
    assert all(re.fullmatch(r"[a-z]+", w) for syn in list(t.values())[:5000] for w in syn)
    assert 40_000 < len(t) < 60_000


# ----------------------------------------------------------------------------- the augmentation

SENT = "The big dog saw a small cat near the old house, and the dog ran. Big Dog's it's"
TABLE = {"big": ("large",), "small": ("little", "minor"), "dog": ("hound",), "house": ("home", "family")}


def test_replacement_is_seeded_per_seed_epoch_example_and_copy():
    aug = SynonymAugmenter(TABLE, copies=4)
    a = aug.pair_copies(SENT, SENT, seed=1, epoch=0, index=5)
    assert a == aug.pair_copies(SENT, SENT, seed=1, epoch=0, index=5)
    assert len(a) == 4
    for other in (dict(seed=2, epoch=0, index=5), dict(seed=1, epoch=1, index=5), dict(seed=1, epoch=0, index=6)):
        draws = [aug.pair_copies(SENT, SENT, **{**other, "index": other["index"] + 100 * k}) for k in range(3)]
        assert all(d != a for d in draws)
    assert len({c for c, _ in a}) > 1  # the copies of one example differ
    assert rsda_rng(1, 0, 5, 0).random() == rsda_rng(1, 0, 5, 0).random() != rsda_rng(1, 0, 5, 1).random()


def test_only_words_with_synonyms_change_and_only_into_a_synonym():
    aug = SynonymAugmenter(TABLE)
    split = re.compile(r"\w+|\W+")
    orig = split.findall(SENT)
    changed = set()
    for s in range(200):
        out = split.findall(aug.augment(SENT, random.Random(s)))
        assert len(out) == len(orig)
        for o, n in zip(orig, out):
            if o != n:
                assert o in TABLE and n in TABLE[o]
                changed.add(o)
    assert changed == set(TABLE)  # every word with synonyms is resampled at some point
    assert aug.augment("Big Dog's", random.Random(0)) == "Big Dog's"  # exact, lower-case match only


def test_stop_words_and_single_letters_are_never_replaced_nor_inserted():
    from alignkit.training.rsda import content_table

    t = content_table({"a": ("ampere",), "still": ("distillery", "even"), "car": ("auto", "i", "still")})
    assert t == {"car": ("auto",)}


def test_pick_is_uniform_over_itself_and_its_synonyms():
    aug = SynonymAugmenter({"small": ("little", "minor")})
    n = 3000
    counts = {"small": 0, "little": 0, "minor": 0}
    rng = random.Random(0)
    for _ in range(n):
        counts[aug.augment("small", rng)] += 1
    for c in counts.values():  # each 1/3; 5 binomial standard deviations
        assert abs(c - n / 3) < 5 * (n * (1 / 3) * (2 / 3)) ** 0.5


@needs_wordnet
def test_real_wordnet_augmentation_keeps_unknown_words_and_picks_real_synonyms():
    t = load_synonyms()
    aug = SynonymAugmenter.from_wordnet()
    assert "a" in t and "a" not in aug.table and "still" not in aug.table  # WordNet's a = ampere
    text = "I said it's still the quick brown fox that jumps over a lazy dog xyzzy"
    for s in range(20):
        out = aug.augment(text, random.Random(s)).split()
        for o, n in zip(text.split(), out):
            assert n == o or n in t[o]
        assert out[0] == "I" and out[2:5] == ["it's", "still", "the"]  # capitalised, contraction, stop words
        assert out[-1] == "xyzzy" and out[-4] == "a"


# ----------------------------------------------------------------------------- variants and training


def test_variants_are_registered_beside_the_others():
    assert resolve_variant("rsda") == {"task": 1.0, "rsda": 1.0}
    assert resolve_variant("rsda+cl") == {"task": 1.0, "rsda": 1.0, "cl_rsda": 1.0}
    assert resolve_variant("rsda+cl", {"cl_rsda": 0.5})["cl_rsda"] == 0.5


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from tests.test_train_trainer import _env

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    e = _env(tmp_path_factory)
    # synonyms among the tiny vocabulary, so the augmented copies really differ in token ids
    e["wordnet"] = write_wordnet(e["root"] / "wn", {"noun": [["man", "woman"], ["dog", "cat"], ["park", "street", "city"]],
                                                     "adj": [["big", "small"], ["happy", "sad"]]})
    yield e
    torch.set_num_threads(threads)


@pytest.mark.parametrize("variant,parts", [("rsda", {"task", "rsda"}), ("rsda+cl", {"task", "rsda", "cl_rsda"})])
def test_rsda_training_takes_steps_with_its_loss_parts_keeps_labels_and_reads_no_lexicon(env, monkeypatch,
                                                                                           variant, parts):
    from alignkit.inputs import lexicons
    from alignkit.training import trainer as trainer_mod
    from tests.test_train_trainer import cfg

    def no_lexicon(*a, **k):
        raise AssertionError("RS-DA must not read any lexicon")
    monkeypatch.setattr(lexicons, "load_lexicon", no_lexicon)
    seen = []
    make = trainer_mod.Trainer._make_batch

    def spy(self, *a, **k):
        b = make(self, *a, **k)
        seen.append(b)
        return b
    monkeypatch.setattr(trainer_mod.Trainer, "_make_batch", spy)
    c = cfg(env, f"rsda-{variant}", variant=variant, max_steps=4, rsda_copies=2, wordnet_dir=str(env["wordnet"]))
    res = trainer_mod.train(c, progress=False)
    assert res.steps == 4
    man = json.loads((Path(c.out) / "manifest.json").read_text())
    assert man["rsda_synonyms"]["words"] == 11  # the 11 words of the test's WordNet, recorded for provenance
    recs = [json.loads(x) for x in (Path(c.out) / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in recs if "loss" in r]
    assert len(steps) == 4
    for r in steps:
        got = {k for k in ("task", "rsda", "cl_rsda", "cl", "rt") if k in r}
        assert got == parts
        assert abs(r["loss"] - sum(r[k] for k in parts)) < 1e-4  # all weights 1
    changed = 0
    for b in seen:
        k, n = 2, len(b)
        assert b.augmented.input_ids.shape[0] == k * n
        assert torch.equal(b.augmented.labels, b.labels.repeat(k))  # labels unchanged, copy-major
        changed += int(not torch.equal(b.augmented.input_ids[:n, :b.input_ids.shape[1]], b.input_ids))
    assert changed > 0  # the copies really differ from the clean text
