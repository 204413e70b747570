"""Reuters-21578 (ModApte, 90 topics), GoEmotions and Delicious read from their
original files, and ``xmc convert-dataset``. Tests of the real files are skipped
when the data folder is absent."""
from collections import Counter

import pytest
from click.testing import CliRunner

from conftest import DATA_ROOT
from xmc.data import DataFormatError, load_corpus
from xmc.datasets import REAL_DATASETS, load_goemotions, load_reuters21578, load_reuters21578_splits
from xmc.datasets.real import load_delicious

REUTERS = DATA_ROOT / "reuters21578"
GOEMOTIONS = DATA_ROOT / "goemotions"
DELICIOUS = DATA_ROOT / "delicious"
needs_reuters = pytest.mark.skipif(not (REUTERS / "reut2-000.sgm").is_file(), reason=f"no Reuters-21578 in {REUTERS}")
needs_delicious = pytest.mark.skipif(not (DELICIOUS / "delicious_train_xc.txt").is_file(),
                                     reason=f"no Delicious in {DELICIOUS}")
needs_goemotions = pytest.mark.skipif(not (GOEMOTIONS / "train.tsv").is_file(), reason=f"no GoEmotions in {GOEMOTIONS}")


def _cli():
    # The worktree's own cli package: under an editable install made from another
    # checkout, xmc.cli would point there.
    from cli.main import cli

    return cli


@pytest.fixture(scope="module")
def reuters():
    return load_reuters21578_splits(REUTERS)


@needs_reuters
def test_reuters_modapte_90_counts(reuters):
    train, test = reuters["train"], reuters["test"]
    assert (len(train), len(test)) == (7770, 3019)
    train_counts = Counter(lab for labels in train.labels for lab in labels)
    test_counts = Counter(lab for labels in test.labels for lab in labels)
    assert len(train_counts) == 90 and set(test_counts) == set(train_counts)  # no test label outside the 90
    assert (train_counts["earn"], test_counts["earn"], train_counts["acq"], test_counts["acq"]) == (2877, 1087, 1650, 719)
    assert sum(map(len, train.labels)) == 9585 and sum(map(len, test.labels)) == 3744
    assert sum(len(x) > 1 for x in train.labels) == 1192 and sum(len(x) > 1 for x in test.labels) == 436
    assert all(labels and len(set(labels)) == len(labels) for labels in train.labels + test.labels)
    assert all(text.strip() for text in train.texts + test.texts)


@needs_reuters
def test_reuters_known_documents(reuters):
    train, test = reuters["train"], reuters["test"]
    assert train.texts[0].startswith("BAHIA COCOA REVIEW\nShowers continued throughout the week in\nthe Bahia")
    assert train.labels[0] == ["cocoa"]
    # NEWID 5467 lists corn twice: kept once, in the article's order.
    i = next(k for k, t in enumerate(train.texts) if t.startswith("AROUND 3.5 MLN ACRES SAID TO BE IDLED BY 0/92"))
    assert train.labels[i] == ["grain", "wheat", "corn", "cotton", "sorghum", "barley"]
    assert test.texts[0].startswith("ASIAN EXPORTERS FEAR DAMAGE FROM U.S.-JAPAN RIFT\n") and test.labels[0] == ["trade"]
    # Entities decoded, the wire-service control codes (&#2; &#3; ...) dropped.
    assert any("BP <BP> " in t for t in train.texts)
    assert not any(c in t for t in train.texts + test.texts for c in ["\x02", "\x03", "\x05", "\x16", "\x1f",
                                                                      "\x7f", "&#", "&lt;", "&amp;"])
    assert sum("Standard & Poor's" in t for t in train.texts + test.texts) > 0
    assert load_reuters21578(REUTERS, "test").texts == test.texts
    with pytest.raises(ValueError, match="reuters21578 has splits train, test; got 'dev'"):
        load_reuters21578(REUTERS, "dev")


def test_reuters_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="reut2-000.sgm: missing; expected the 22 files"):
        load_reuters21578(tmp_path, "train")


@needs_goemotions
def test_goemotions_counts_and_labels():
    sizes = {"train": (43410, 7102), "dev": (5426, 878), "test": (5427, 837)}
    for split, (n_docs, n_multi) in sizes.items():
        data = load_goemotions(GOEMOTIONS, split)
        assert len(data) == n_docs and sum(len(x) > 1 for x in data.labels) == n_multi
        assert len({lab for labels in data.labels for lab in labels}) == 28
    train = load_goemotions(GOEMOTIONS, "train")
    assert train.texts[0] == "My favourite food is anything I didn't have to cook myself."
    assert train.labels[0] == ["neutral"]
    assert train.labels[7] == ["desire", "optimism"]
    # CSV-style quoting undone: "Three words, no subtlety. ""Dude. Stop. Seriously."" "
    assert train.texts[123] == 'Three words, no subtlety. "Dude. Stop. Seriously." ' and train.labels[123] == ["annoyance"]


def test_goemotions_bad_row_is_named(tmp_path):
    (tmp_path / "emotions.txt").write_text("joy\nsadness\n")
    (tmp_path / "dev.tsv").write_text("fine\t0\tid1\nbad\t0,7\tid2\n")
    with pytest.raises(DataFormatError, match=r"dev.tsv:2: expected label ids in 0..1 separated by commas, found '0,7'"):
        load_goemotions(tmp_path, "dev")
    (tmp_path / "dev.tsv").write_text("fine\t0\tid1\nno tabs here\n")
    with pytest.raises(DataFormatError, match=r"dev.tsv:2: expected 3 tab-separated fields .* found 1"):
        load_goemotions(tmp_path, "dev")


def test_registry_matches_the_cli_choices():
    command = _cli().commands["convert-dataset"]
    choices = next(p for p in command.params if p.name == "name").type.choices
    assert sorted(choices) == sorted(REAL_DATASETS)


@needs_goemotions
def test_convert_goemotions_reads_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XMC_DATA", str(DATA_ROOT))  # --src from $XMC_DATA/goemotions
    result = CliRunner().invoke(_cli(), ["convert-dataset", "goemotions", "--out", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "43,410 documents, 28 distinct labels" in result.output
    for split in ("train", "dev", "test"):
        assert load_corpus(tmp_path / f"{split}.jsonl") == load_goemotions(GOEMOTIONS, split)


@needs_reuters
def test_convert_reuters_reads_back(tmp_path, reuters):
    result = CliRunner().invoke(_cli(), ["convert-dataset", "reuters21578", "--src", str(REUTERS),
                                         "--out", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.jsonl", "train.jsonl"]
    for split in ("train", "test"):
        assert load_corpus(tmp_path / f"{split}.jsonl") == reuters[split]


def test_convert_without_src_or_env_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.delenv("XMC_DATA", raising=False)
    result = CliRunner().invoke(_cli(), ["convert-dataset", "goemotions", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "pass --src" in result.output and "$XMC_DATA" in result.output


def _tiny_delicious(folder, words):
    header = ["@relation tiny"] + [f"@attribute {w} {{0,1}}" for w in words + ["TAG_web", "TAG_.net"]] + ["@data"]
    (folder / "delicious-train.arff").write_text("\n".join(header) + "\n")
    (folder / "delicious_train_xc.txt").write_text(f"2 {len(words)} 2\n0,1 0:1 1:1 2:1\n1 3:1\n")


def test_delicious_words_stay_one_distinct_token_each(tmp_path):
    from xmc.text.tokens import TextParams, Tokenizer

    _tiny_delicious(tmp_path, ["form_id", "formid", "_qacct", "zu"])
    data = load_delicious(tmp_path, "train")
    assert data.labels == [["web", ".net"], [".net"]]
    # Dropping the underscore would have made form_id and formid one word.
    assert Tokenizer(TextParams()).tokenize(data.texts[0]) == ["form'id", "formid", "qacct"]
    assert data.texts[1] == "zu"


def test_delicious_words_that_would_merge_are_refused(tmp_path):
    _tiny_delicious(tmp_path, ["form_id", "form__id", "b", "c"])
    with pytest.raises(DataFormatError, match=r"delicious-train.arff: expected word attributes.*4 words \(3 distinct"):
        load_delicious(tmp_path, "train")


@needs_delicious
def test_delicious_counts():
    train, test = load_delicious(DELICIOUS, "train"), load_delicious(DELICIOUS, "test")
    assert (len(train), len(test)) == (12920, 3185)
    # SOURCE.md: 19.047 labels and 18.5 features per training document, 983 labels of which 982 in test.
    assert sum(map(len, train.labels)) / len(train) == pytest.approx(19.047, abs=5e-4)
    assert sum(len(t.split()) for t in train.texts) / len(train) == pytest.approx(18.54, abs=5e-3)
    assert len({lab for labels in train.labels for lab in labels}) == 983
    assert len({lab for labels in test.labels for lab in labels}) == 982
