"""Hugging Face `tokenizer.json` files (BPE, Unigram, WordPiece, WordLevel) as a lexi tokenizer.

Encoding and decoding go through the optional `tokenizers` package (`pip install "lexi[hf]"`);
importing lexi does not need it. Everything else here reads the JSON alone, so lexi/zett/vocab.py
can turn such a file into a byte vocabulary without the package.

Specials: `encode` adds none (packing adds `bos_id` itself) and `decode` skips them. The pad,
bos, eos and unk ids come from the file: the post-processor's template (a special token before
the text is the bos, one after it the eos), `padding.pad_id`, the model's unk token, then common
names (`<s>`, `</s>`, `[CLS]`, `[SEP]`, `<|endoftext|>`, ...). A model without a bos uses its eos
(GPT-2's `<|endoftext|>` separates documents); one without a pad uses unk, else eos.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from lexi.errors import UserError
from lexi.tokenizers.base import Tokenizer, id_array
from lexi.tokenizers.hf_json import ROLE_NAMES, Specials, parse, specials, token_ids
from lexi.tokenizers.hf_pieces import no_prefix_space, read_tokenizer_json
from lexi.tokenizers.token_bytes import ByteVocab, make_vocab, special_roles
from lexi.tokenizers.sentencepiece import valid_unicode

MODEL_FILE = "hf_tokenizer.json"  # name of the copy saved next to lexi's own tokenizer.json
INSTALL = 'pip install "lexi[hf]"'


def _library():
    try:
        import tokenizers
    except ImportError:
        raise UserError(f"Hugging Face tokenizer files need the `tokenizers` package: {INSTALL}") from None
    return tokenizers


class HFTokenizer(Tokenizer):
    """A Hugging Face tokenizer.json. `data` is the parsed file, `raw` its exact bytes (saved as is)."""

    name = "hf"

    def __init__(self, source: str | os.PathLike | bytes):
        if isinstance(source, bytes):
            self.raw, where = source, "the given tokenizer.json bytes"
        else:
            path = Path(source)
            if not path.is_file():
                raise UserError(f"Hugging Face tokenizer file {path} does not exist; check the path")
            self.raw, where = path.read_bytes(), str(path)
        self.data = parse(self.raw, where)
        library = _library()
        try:
            self._tok = library.Tokenizer.from_str(self.raw.decode("utf-8"))
        except Exception as e:  # the Rust side raises plain Exceptions on malformed files
            raise UserError(f"{where} is not a valid Hugging Face tokenizer ({e}); pass a tokenizer.json "
                            "written by the `tokenizers` library") from None
        self._set_ids(specials(self.data), where)

    def _set_ids(self, s: Specials, where: str) -> None:
        if s.bos is None and s.eos is None:
            names = ", ".join(ROLE_NAMES["bos"] + ROLE_NAMES["eos"])
            raise UserError(f"{where} has neither a bos nor an eos token (none in its post-processor, none named "
                            f"{names}), so documents cannot be separated; add one to its added_tokens")
        self.eos_id = s.eos if s.eos is not None else s.bos
        self.bos_id = s.bos if s.bos is not None else s.eos
        self.unk_id = s.unk
        self.pad_id = next(i for i in (s.pad, s.unk, self.eos_id) if i is not None)
        top = max([*token_ids(self.data).values(), *s.special, -1]) + 1
        self.vocab_size = max(int(self._tok.get_vocab_size(with_added_tokens=True)), top)
        real_pad = [s.pad] if s.pad is not None else []
        self.special_ids = tuple(sorted({*s.special, self.bos_id, self.eos_id, *real_pad}))
        self._skip = np.asarray(sorted({*self.special_ids, self.pad_id}), dtype=np.int64)

    def encode(self, text: str) -> list[int]:
        return list(self._encode_batch([text])[0])

    def _encode_batch(self, texts: list[str]) -> list[list[int]]:
        fast = getattr(self._tok, "encode_batch_fast", self._tok.encode_batch)  # no offsets: faster
        try:
            out = fast(texts, add_special_tokens=False)
        except (TypeError, UnicodeError):  # lone surrogates cannot reach the Rust side
            out = fast([valid_unicode(t) for t in texts], add_special_tokens=False)
        return [e.ids for e in out]

    def encode_np(self, text: str) -> np.ndarray:
        return np.asarray(self.encode(text), dtype=np.int32)

    def encode_batch_np(self, texts: Sequence[str]) -> list[np.ndarray]:
        if not texts:
            return []
        return [np.asarray(ids, dtype=np.int32) for ids in self._encode_batch(list(texts))]

    def decode(self, ids: Iterable[int]) -> str:
        a = id_array(ids)
        a = a[(a >= 0) & (a < self.vocab_size) & ~np.isin(a, self._skip)]
        return self._tok.decode(a.tolist(), skip_special_tokens=True)

    def token_bytes(self) -> ByteVocab:
        v = read_tokenizer_json(self.data)
        pieces = list(v.pieces) + [b""] * (self.vocab_size - len(v))
        return make_vocab(pieces, {**v.roles, **special_roles(self)}, v.byte_ids)

    def mid_text(self) -> "Tokenizer":
        """The same file with every start-of-text space off (hf_pieces.no_prefix_space); where
        this `tokenizers` version rejects that combination, this tokenizer as it is."""
        data = json.loads(json.dumps(self.data))
        for key in ("normalizer", "pre_tokenizer"):
            data[key] = no_prefix_space(data.get(key))
        try:
            return HFTokenizer(json.dumps(data).encode("utf-8"))
        except UserError:
            return self

    def record(self) -> dict[str, Any]:
        return {"kind": "hf", "model_file": MODEL_FILE, "model_sha256": hashlib.sha256(self.raw).hexdigest()}

    def files(self) -> dict[str, bytes]:
        return {MODEL_FILE: self.raw}


def from_description(desc: dict, base: Path) -> HFTokenizer:
    """Loader for `lexi.tokenizers.register`: lexi's tokenizer.json for kind "hf" names the HF file."""
    model_file = desc.get("model_file")
    if not model_file:
        raise UserError("an hf tokenizer needs a model file: pass the path of a Hugging Face tokenizer.json "
                        "(or set config.data.tokenizer.model_file)")
    return HFTokenizer(base / Path(str(model_file)).expanduser())
