"""`--text-file`: one reader and one layout for `lexi eval` and `lexi zett eval` (lexi/data/held_out.py)."""
import gzip
import json

import numpy as np
import pytest

from lexi.data.held_out import HELP, document_tokens, read_documents
from lexi.errors import UserError


def test_plain_text_splits_at_blank_lines_and_keeps_indentation(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("first line\nstill first\n\n\n    def second():\n        pass\n  \t\nthird\n")
    assert read_documents(p) == ["first line\nstill first", "    def second():\n        pass", "third\n"]
    (tmp_path / "one.txt").write_text("no blank line\nat all")
    assert read_documents(tmp_path / "one.txt") == ["no blank line\nat all"]


def test_jsonl_and_gzip_give_one_document_per_line(tmp_path):
    lines = [json.dumps({"text": "a\n\nb"}), "", json.dumps({"text": "c", "id": 3})]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    with gzip.open(tmp_path / "d.jsonl.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    assert read_documents(tmp_path / "d.jsonl") == read_documents(tmp_path / "d.jsonl.gz") == ["a\n\nb", "c"]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "ok"}) + "\n{not json\n")
    with pytest.raises(UserError, match=r"bad.jsonl:2: not valid JSON"):
        read_documents(tmp_path / "bad.jsonl")


def test_missing_and_empty_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_documents(tmp_path / "gone.txt")
    (tmp_path / "blank.txt").write_text("\n \n\n")
    with pytest.raises(UserError, match="is empty"):
        read_documents(tmp_path / "blank.txt")


def test_documents_are_laid_out_as_a_corpus_stream(tmp_path):
    """bos before each document, as lexi/data/pipeline.py writes a split, so held-out text reads as
    training text did."""
    from lexi.data.pipeline import build_token_stream
    from lexi.data.text_files import TextFiles
    from lexi import tokenizers

    tok = tokenizers.load("byte")
    docs = ["In the beginning", "God created", "the heaven and the earth."]
    for i, d in enumerate(docs):
        (tmp_path / f"{i}.txt").write_text(d)
    corpus = TextFiles(str(tmp_path / "*.txt"), val_fraction=0.0)
    want = np.asarray(build_token_stream(corpus, "train", tok, tmp_path / "cache"))
    (tmp_path / "held.txt").write_text("\n\n".join(corpus.documents("train")))
    np.testing.assert_array_equal(document_tokens(read_documents(tmp_path / "held.txt"), tok), want)


def test_both_commands_document_the_same_convention():
    from lexi.cli import build_parser

    helps = []
    for path in (["eval"], ["zett", "eval"]):
        parser = build_parser()
        for name in path:
            parser = next(a for a in parser._actions if a.dest in ("command", "zett_command")).choices[name]
        helps.append(next(a.help for a in parser._actions if a.dest == "text_file"))
    assert helps == [HELP, HELP] and "blank lines" in HELP and "jsonl" in HELP
