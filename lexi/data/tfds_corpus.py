"""`tfds:<name>` corpora: a tensorflow-datasets text dataset read through its random-access
(array_record) data source, so TensorFlow is not needed.

Nothing is ever downloaded: the dataset must already be prepared in `data_dir`. TFDS has
its own splits, so `val_fraction` does not apply; "validation" reads the configured
validation split, or "test" when the dataset has no such split.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterator

from lexi.data.corpus import Corpus, check_split
from lexi.errors import UserError

_READ_BATCH = 256  # examples fetched per data-source call


class TFDSCorpus(Corpus):
    def __init__(self, dataset: str, *, text_field: str = "text", data_dir: str = "", train_split: str = "train",
                 validation_split: str = "validation", max_documents: int = 0):
        self.dataset, self.text_field, self.max_documents = dataset, text_field, max_documents
        self.name = f"tfds:{dataset}"
        self.data_dir = os.path.expanduser(data_dir) if data_dir else None
        self.splits = {"train": train_split, "validation": validation_split}
        self._builder = None

    def _where(self) -> str:
        return self.data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")

    def _unavailable(self, detail: str) -> UserError:
        return UserError(
            f"TFDS dataset {self.dataset!r} is not available in {self._where()}: prepare it with "
            f"`tfds build {self.dataset} --file_format=array_record --data_dir {self._where()}` on a machine "
            f"with internet, or point --config.data.tfds_data_dir at a copy ({detail})")

    def builder(self):
        """The prepared builder, or a UserError that says how to prepare it."""
        if self._builder is None:
            try:
                import tensorflow_datasets as tfds
            except ImportError as e:
                raise UserError("tfds corpora need tensorflow-datasets: pip install tensorflow-datasets") from e
            try:
                b = tfds.builder(self.dataset, data_dir=self.data_dir)
                prepared = b.is_prepared()
            except Exception as e:  # unknown name, unreadable files, ...: all mean "not here"
                raise self._unavailable(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
            if not prepared:
                raise self._unavailable("no prepared copy found")
            self._builder = b
        return self._builder

    def split_name(self, split: str) -> str:
        """The TFDS split read for our "train"/"validation"."""
        check_split(split)
        available = set(self.builder().info.splits.keys())
        want = self.splits[split]
        if want.split("[")[0] in available:
            return want
        if split == "validation" and "test" in available:
            return "test"
        raise UserError(f"TFDS dataset {self.dataset!r} has no split {want!r} (it has {sorted(available)}); set "
                        f"config.data.{'tfds_split' if split == 'train' else 'tfds_validation_split'}")

    def _source(self, split_name: str):
        try:
            return self.builder().as_data_source(split=split_name)
        except NotImplementedError as e:
            raise UserError(
                f"TFDS dataset {self.dataset!r} in {self._where()} was prepared as TFRecord, which needs TensorFlow "
                f"to read; rebuild it with `tfds build {self.dataset} --file_format=array_record`") from e
        except Exception as e:
            raise self._unavailable(f"{type(e).__name__}: {e}") from e

    def records(self, split: str) -> tuple[Any, int]:
        """(the split's random-access data source, how many of its first records are read): what the
        streaming pipeline indexes (lexi/data/tfds_source.py) instead of reading the split in order."""
        src = self._source(self.split_name(split))
        total = len(src) if not self.max_documents else min(len(src), self.max_documents)
        if total == 0:
            raise UserError(f"the {split} split of {self.name} is empty")
        return src, total

    def documents(self, split: str) -> Iterator[str]:
        src, total = self.records(split)
        get_many = getattr(src, "__getitems__", None)
        for lo in range(0, total, _READ_BATCH):
            keys = list(range(lo, min(lo + _READ_BATCH, total)))
            for ex in (get_many(keys) if get_many else [src[k] for k in keys]):
                yield self.text(ex)

    def text(self, ex: Any) -> str:
        """The document of one record (its `text_field` feature, decoded)."""
        if not isinstance(ex, dict) or self.text_field not in ex:
            have = sorted(ex) if isinstance(ex, dict) else type(ex).__name__
            raise UserError(f"TFDS dataset {self.dataset!r} has no feature {self.text_field!r} (it has {have}); "
                            "set --config.data.text_field")
        text = ex[self.text_field]
        if hasattr(text, "item") and not isinstance(text, (bytes, str)):
            text = text.item()
        return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)

    def fingerprint(self) -> str:
        b = self.builder()
        splits = {s: self.split_name(s) for s in ("train", "validation")}
        sizes = {k: int(v.num_examples) for k, v in b.info.splits.items()}
        ident = {"dataset": self.dataset, "version": str(b.info.version), "data_dir": str(b.data_dir),
                 "splits": splits, "sizes": sizes, "text_field": self.text_field, "max_documents": self.max_documents}
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
        return f"tfds-{digest}"
