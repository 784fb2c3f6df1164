"""Lexicon type, strict readers (file:line errors), shipped lexicons, frequency lists."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from alignkit.cli import main
from alignkit.errors import AlignkitError
from alignkit.inputs.frequencies import frequent_words
from alignkit.inputs.lexicons import (
    FORMAT_TAG,
    TATOEBA_CODES,
    Lexicon,
    content_sha256,
    format_lexicon,
    is_word_in_script,
    load_lexicon,
    read_lexicon,
    read_metadata,
    shipped_dir,
    shipped_pairs,
    write_lexicon,
)

REQUIRED_PAIRS = ["en-tr", "en-de", "en-es", "en-fr", "en-ar", "en-hi", "en-sw", "en-ru",
                  "en-zh", "en-ja", "en-pt", "en-it"]
PAIRS = [("house", "ev"), ("house", "konut"), ("water", "su"), ("book", "kitap")]


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


# ----------------------------------------------------------------------------- the type


def test_lexicon_views_keep_first_seen_order_and_group_gold():
    lex = Lexicon.from_pairs("en", "tr", PAIRS + [("house", "ev")], name="toy")
    assert lex.pairs == tuple(PAIRS)  # the repeated pair is kept once
    assert lex.sources() == ["house", "water", "book"]
    assert lex.targets() == ["ev", "konut", "su", "kitap"]
    assert lex.gold() == {"house": {"ev", "konut"}, "water": {"su"}, "book": {"kitap"}}
    assert lex.pair == "en-tr" and len(lex) == 4


def test_content_hash_is_sha256_of_canonical_text():
    import hashlib

    expected = hashlib.sha256("en\ttr\nhouse\tev\nwater\tsu\n".encode()).hexdigest()
    assert content_sha256("en", "tr", [("house", "ev"), ("water", "su")]) == expected
    assert Lexicon.from_pairs("en", "tr", [("house", "ev"), ("water", "su")]).sha256 == expected
    # languages are part of the content
    assert content_sha256("en", "az", [("house", "ev"), ("water", "su")]) != expected


def test_inverted_swaps_languages_and_pairs():
    inv = Lexicon.from_pairs("en", "tr", PAIRS).inverted()
    assert (inv.src_lang, inv.tgt_lang) == ("tr", "en")
    assert inv.gold()["ev"] == {"house"}


# ----------------------------------------------------------------------------- readers


def test_muse_tsv_and_alignkit_formats_read_to_the_same_content(tmp_path):
    lex = Lexicon.from_pairs("en", "tr", PAIRS)
    muse_space = write(tmp_path / "en-tr.txt", "".join(f"{s} {t}\n" for s, t in PAIRS))
    muse_tab = write(tmp_path / "en-tr.tab.txt", "".join(f"{s}\t{t}\n" for s, t in PAIRS))
    tsv = write(tmp_path / "words.tsv", "source\ttarget\tscore\n" + "".join(f"{s}\t{t}\t1\n" for s, t in PAIRS))
    tsv_codes = write(tmp_path / "codes.tsv", "en\ttr\n" + "".join(f"{s}\t{t}\n" for s, t in PAIRS))
    own = write_lexicon(lex, tmp_path / "own.tsv", {"pair": "en-tr", "source": "test"})
    got = [
        read_lexicon(muse_space), read_lexicon(muse_tab),
        read_lexicon(tsv, src_lang="en", tgt_lang="tr"), read_lexicon(tsv_codes), read_lexicon(own),
    ]
    for g in got:
        assert (g.src_lang, g.tgt_lang, g.pairs, g.sha256) == ("en", "tr", lex.pairs, lex.sha256)


def test_alignkit_tsv_round_trips_with_metadata(tmp_path):
    lex = Lexicon.from_pairs("en", "de", [("river", "fluss"), ("river", "strom")])
    path = write_lexicon(lex, tmp_path / "x.tsv", {"pair": "en-de", "command": "alignkit lexicon build"})
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == FORMAT_TAG
    assert text.endswith("en\tde\nriver\tfluss\nriver\tstrom\n")
    assert format_lexicon(lex, {"pair": "en-de", "command": "alignkit lexicon build"}) == text
    assert read_metadata(path) == {"pair": "en-de", "command": "alignkit lexicon build"}
    assert read_lexicon(path).pairs == lex.pairs


def test_bom_crlf_blank_lines_and_nfd_are_tolerated(tmp_path):
    clean = write(tmp_path / "en-de.clean.txt", "river fluss\ngreen grün\n")
    nfd = unicodedata.normalize("NFD", "grün")
    messy = write(tmp_path / "en-de.messy.txt", b"\xef\xbb\xbf" + f"river fluss\r\n\r\ngreen {nfd}\r\n".encode())
    a, b = read_lexicon(clean), read_lexicon(messy)
    assert b.pairs == a.pairs == (("river", "fluss"), ("green", "grün"))
    assert a.sha256 == b.sha256


def test_languages_come_from_arguments_header_or_file_name(tmp_path):
    p = write(tmp_path / "de-en.0-5000.txt", "fluss river\n")
    assert (read_lexicon(p).src_lang, read_lexicon(p).tgt_lang) == ("de", "en")
    assert read_lexicon(p, src_lang="nl", tgt_lang="en").src_lang == "nl"
    anonymous = write(tmp_path / "words.txt", "fluss river\n")
    with pytest.raises(AlignkitError, match="cannot tell the languages"):
        read_lexicon(anonymous)


MALFORMED = [
    # (file name, content, line, message fragment)
    ("en-de.cols.txt", "river fluss\ngreen grün extra\n", 2, "expected 2"),
    ("en-de.one.txt", "river fluss\n\nlonely\n", 3, "expected 2"),
    ("en-de.tsv", "en\tde\nriver\tfluss\ngreen\tgrün\tx\n", 3, "expected 2 tab-separated columns, found 3"),
    ("en-de.emptysrc.tsv", "en\tde\nriver\tfluss\n \tgrün\n", 3, "empty source word"),
    ("en-de.emptytgt.tsv", "en\tde\nriver\t\n", 2, "empty target word"),
    ("en-de.own.tsv", f"{FORMAT_TAG}\n# pair: en-de\nen\tde\nriver\tfluss\nriver\n", 5, "expected 2"),
    ("en-de.badhdr.tsv", f"{FORMAT_TAG}\nsource\ttarget\nriver\tfluss\n", 2, "header must be two language codes"),
]


@pytest.mark.parametrize("name,content,line,fragment", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_lines_are_reported_with_file_and_line(tmp_path, name, content, line, fragment):
    path = write(tmp_path / name, content)
    with pytest.raises(AlignkitError) as e:
        read_lexicon(path)
    assert f"{path}:{line}:" in str(e.value)
    assert fragment in str(e.value)


def test_bad_utf8_is_reported_on_its_line(tmp_path):
    path = write(tmp_path / "en-de.latin1.txt", "river fluss\nhouse haus\n".encode() + "green grün\n".encode("latin-1"))
    with pytest.raises(AlignkitError, match=rf"{re.escape(str(path))}:3: not valid UTF-8 \(byte 0xfc\)"):
        read_lexicon(path)


def test_empty_and_missing_files_are_errors(tmp_path):
    with pytest.raises(AlignkitError, match="no word pairs"):
        read_lexicon(write(tmp_path / "en-de.txt", "\n\n"))
    with pytest.raises(AlignkitError, match="no such file"):
        read_lexicon(tmp_path / "en-de.missing.txt")


@pytest.mark.parametrize("name,content,line,fragment", MALFORMED[:4], ids=[m[0] for m in MALFORMED[:4]])
def test_cli_reports_malformed_lexicon_in_one_line_with_exit_code_2(tmp_path, capsys, name, content, line, fragment):
    path = write(tmp_path / name, content)
    assert main(["lexicon", "stats", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert f"{path}:{line}:" in err and "Traceback" not in err


def test_cli_bad_encoding_exit_code_2(tmp_path, capsys):
    path = write(tmp_path / "en-de.txt", b"river fluss\ngreen gr\xfcn\n")
    assert main(["lexicon", "stats", str(path)]) == 2
    assert f"{path}:2: not valid UTF-8" in capsys.readouterr().err


# ----------------------------------------------------------------------------- shipped


def test_required_pairs_are_shipped():
    assert set(REQUIRED_PAIRS) <= set(shipped_pairs())


def test_load_by_pair_resolves_the_shipped_file():
    lex = load_lexicon("en-tr")
    assert lex.name == "en-tr.test" and (lex.src_lang, lex.tgt_lang) == ("en", "tr")
    train = load_lexicon("en-tr", split="train")
    assert train.name == "en-tr.train"
    path_lex = load_lexicon(shipped_dir() / "en-tr.test.tsv")
    assert path_lex.sha256 == lex.sha256


def test_unknown_pair_lists_the_shipped_pairs(capsys):
    with pytest.raises(AlignkitError, match="en-xx.*shipped pairs: .*en-de.*en-tr"):
        load_lexicon("en-xx")
    with pytest.raises(AlignkitError, match="neither a file nor a language pair"):
        load_lexicon("english-turkish")
    with pytest.raises(AlignkitError, match="unknown lexicon split"):
        load_lexicon("en-tr", split="dev")
    assert main(["lexicon", "stats", "en-xx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no lexicon for pair 'en-xx'; shipped pairs: ")


def test_env_directory_is_searched_first(tmp_path, monkeypatch):
    for split in ("train", "test"):
        write_lexicon(Lexicon.from_pairs("en", "xh", [(f"{split}word", "igama")]), tmp_path / f"en-xh.{split}.tsv")
    write_lexicon(Lexicon.from_pairs("en", "tr", [("custom", "özel")]), tmp_path / "en-tr.test.tsv")
    write_lexicon(Lexicon.from_pairs("en", "tr", [("custom2", "özel")]), tmp_path / "en-tr.train.tsv")
    monkeypatch.setenv("ALIGNKIT_LEXICONS", str(tmp_path))
    assert "en-xh" in shipped_pairs() and "en-de" in shipped_pairs()
    assert load_lexicon("en-xh").pairs == (("testword", "igama"),)
    assert load_lexicon("en-tr").pairs == (("custom", "özel"),)


def test_cli_stats_prints_counts_share_and_sample(capsys):
    assert main(["lexicon", "stats", "en-es", "--sample", "5", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    lex = load_lexicon("en-es")
    assert f"pairs: {len(lex.pairs)}" in out
    assert f"unique source words: {len(lex.sources())}" in out
    share = sum(len(v) > 1 for v in lex.gold().values()) / len(lex.sources())
    assert f"multi-translation entries: {share:.1%}" in out
    assert "source words shared with en-es.test: 0" in out
    sample = [ln.strip().split("\t") for ln in out.splitlines() if ln.startswith("  ")]
    assert len(sample) == 5 and all(tuple(p) in set(lex.pairs) for p in sample)


@pytest.fixture(scope="module")
def shipped():
    return {p: (load_lexicon(p, "train"), load_lexicon(p, "test")) for p in shipped_pairs()}


def test_train_and_test_share_no_source_word_in_any_shipped_pair(shipped):
    for pair, (train, test) in shipped.items():
        assert not set(train.sources()) & set(test.sources()), pair


def test_every_shipped_test_split_has_at_least_1000_source_words(shipped):
    for pair, (_, test) in shipped.items():
        assert 1000 <= len(test.sources()) <= 1500, (pair, len(test.sources()))


def test_shipped_pairs_are_clean_single_words(shipped):
    for pair, (train, test) in shipped.items():
        src, tgt = pair.split("-")
        for s, t in train.pairs + test.pairs:
            assert s != t, (pair, s)
            assert is_word_in_script(s, src) and is_word_in_script(t, tgt), (pair, s, t)
            assert s == unicodedata.normalize("NFC", s) and t == unicodedata.normalize("NFC", t)
            if tgt not in ("zh", "ja", "ar", "hi"):
                assert t == t.lower(), (pair, t)


def test_shipped_files_say_how_to_rebuild_them():
    for pair in shipped_pairs():
        for split in ("train", "test"):
            meta = read_metadata(shipped_dir() / f"{pair}.{split}.tsv")
            assert meta["pair"] == pair and meta["split"] == split
            assert meta["command"].startswith(f"alignkit lexicon build --pair {pair} --source ")
            assert "sha256" in meta["dictionaries"] and meta["wordfreq"]


def test_readme_documents_every_shipped_pair():
    readme = (shipped_dir() / "README.md").read_text(encoding="utf-8")
    for pair in shipped_pairs():
        assert f"alignkit lexicon build --pair {pair}" in readme, pair


def test_tatoeba_codes_cover_shipped_languages(shared_data):
    for pair in shipped_pairs():
        tgt = pair.split("-")[1]
        code = TATOEBA_CODES[tgt]
        assert (shared_data / "tatoeba" / f"tatoeba.{code}-eng.{code}").is_file(), (tgt, code)
    assert TATOEBA_CODES["zh"] == "cmn" and TATOEBA_CODES["sw"] == "swh" and TATOEBA_CODES["tr"] == "tur"


# ----------------------------------------------------------------------------- scripts, frequencies


@pytest.mark.parametrize("word,lang,ok", [
    ("grün", "de", True), ("so-so", "en", True), ("o'clock", "en", True), ("-ness", "en", False),
    ("two words", "en", False), ("abc1", "en", False), ("книга", "ru", True), ("kniga", "ru", False),
    ("البيئة", "ar", True), ("क्षारीय", "hi", True), ("get", "hi", False), ("水", "zh", True),
    ("食べる", "ja", True), ("コーヒー", "ja", True), ("www", "ja", False), ("", "en", False),
])
def test_is_word_in_script(word, lang, ok):
    assert is_word_in_script(word, lang) is ok


def test_frequent_words_never_falls_back_to_english():
    assert frequent_words("sw", 100) == []  # wordfreq has no Swahili list
    assert frequent_words("de", 0) == []


def test_frequent_words_are_n_words_of_the_language_in_rank_order():
    import wordfreq

    de = frequent_words("de", 500)
    assert len(de) == 500 and len(set(de)) == 500
    assert de[:3] == [w for w in wordfreq.top_n_list("de", 10) if w.isalpha()][:3]
    assert all(is_word_in_script(w, "de") for w in de)
    hi = frequent_words("hi", 3000)
    assert len(hi) == 3000 and all(is_word_in_script(w, "hi") for w in hi)  # wordfreq's hi list has English
    assert "get" in wordfreq.top_n_list("hi", 6000) and "get" not in hi
    el = frequent_words("el", 200)  # wordfreq case-folds 'της' to 'τησ'; the pool must not
    assert "της" in el and not any(w.endswith("σ") for w in el)


def test_shipped_lexicons_are_package_data():
    """The shipped lexicons live in the top-level lexicons/ folder and pyproject installs it as
    the package alignkit.shipped_lexicons, so a wheel (non-editable) install finds them."""
    import importlib.resources

    d = shipped_dir()
    assert d.is_dir() and d.resolve() == Path(str(importlib.resources.files("alignkit.shipped_lexicons"))).resolve()
    root = Path(__file__).resolve().parents[1]
    assert d.resolve() == (root / "lexicons").resolve()
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    assert '"alignkit.shipped_lexicons" = "lexicons"' in pyproject
    assert '"alignkit.shipped_lexicons" = ["*.tsv", "README.md"]' in pyproject
    assert len(list(d.glob("*.test.tsv"))) >= 22
