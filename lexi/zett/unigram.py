"""SentencePiece Unigram models built in memory from sampled pieces: ZeTT's per-step tokenizers.

Every model has the same fixed start (pad 0, unk 1, bos 2, eos 3, then the 256 byte pieces,
so any text stays encodable) followed by the sampled pieces, and is written straight into
protobuf's wire format (lexi/zett/sampler.py samples the pieces; benchmarks/design_figures.py
times a 32k-piece build against protobuf objects). A byte-like model (lexi/zett/byte_like.py)
leaves spaces unescaped, so text outside its pieces is written as UTF-8 byte pieces, a space
as <0x20>, as in a byte-level tokenizer.
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np

from lexi.errors import UserError
from lexi.tokenizers.sentencepiece import SentencePieceTokenizer, valid_unicode

SPECIALS = (("<pad>", 3), ("<unk>", 2), ("<s>", 3), ("</s>", 3))  # (piece, proto type): ids 0..3
NUM_FIXED = len(SPECIALS) + 256  # specials and byte pieces, before the sampled pieces
BYTE_PIECES = tuple(f"<0x{b:02X}>" for b in range(256))
PLACEHOLDER = "<unused>"  # the UNUSED piece a bytes-only model needs (unigram_tokenizer)
SPACE = "\u2581"  # SentencePiece's stand-in for " "


def unigram_tokenizer(pieces_with_scores: Sequence[tuple[str, float]], *,
                      byte_like: bool = False) -> SentencePieceTokenizer:
    """A SentencePiece Unigram model built in memory: pad 0, unk 1, bos 2, eos 3, the 256
    byte pieces, then `pieces_with_scores` (text with real spaces; log-probabilities).

    Settings match lexi's trained models (identity normalisation, whitespace kept, byte
    fallback), except add_dummy_prefix is off: the text is encoded exactly as written, so
    a document's first word is the "the" candidate, not " the", and decoding gives back
    the text byte for byte (lossless as lexi's SentencePiece docstring describes).

    `byte_like`: spaces are not escaped to U+2581, so a space outside the pieces is the byte
    piece <0x20> (escaped, it would be U+2581's three bytes, and decode would not give the
    text back), as in a byte-level tokenizer; the pieces may be none (bytes only), and then
    one UNUSED placeholder (id 260, never produced) stands in, since SentencePiece loads no
    model without a piece of its own.
    """
    if byte_like and not pieces_with_scores:
        return SentencePieceTokenizer(_head() + _placeholder() + _tail(NUM_FIXED + 1, 16, escape=False))
    raw, scores = _checked(pieces_with_scores)
    space = " " if byte_like else SPACE
    body = _pieces_wire(raw, scores, space)
    if body is None:  # a piece too long for the vectorised writer: let protobuf write them
        from sentencepiece import sentencepiece_model_pb2 as pb

        m = pb.ModelProto()
        m.pieces.extend([pb.ModelProto.SentencePiece(piece=p.replace(" ", space), score=s)
                         for p, s in zip(raw, scores.tolist())])
        body = m.SerializeToString()
    longest = max(16, max(map(len, raw), default=0))
    return SentencePieceTokenizer(_head() + body + _tail(NUM_FIXED + len(raw), longest, escape=not byte_like))


@functools.lru_cache(maxsize=1)
def _placeholder() -> bytes:
    """The one UNUSED piece of a bytes-only model (id NUM_FIXED): never produced by encoding."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.pieces.extend([pb.ModelProto.SentencePiece(piece=PLACEHOLDER, score=0.0,
                                                 type=pb.ModelProto.SentencePiece.UNUSED)])
    return m.SerializeToString()


@functools.lru_cache(maxsize=1)
def _head() -> bytes:
    """The serialized start of every sampled model: the specials and the byte pieces."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    piece = pb.ModelProto.SentencePiece
    m.pieces.extend([piece(piece=p, score=0.0, type=k) for p, k in SPECIALS])
    m.pieces.extend([piece(piece=p, score=0.0, type=piece.BYTE) for p in BYTE_PIECES])
    return m.SerializeToString()


def _tail(vocab_size: int, longest: int, escape: bool = True) -> bytes:
    """The serialized trainer and normalizer specs. Protobuf writes fields in number order
    (pieces first) and concatenated messages merge, so head + pieces + tail is one model."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    t = m.trainer_spec
    t.model_type, t.vocab_size, t.byte_fallback = pb.TrainerSpec.UNIGRAM, vocab_size, True
    t.pad_id, t.unk_id, t.bos_id, t.eos_id = 0, 1, 2, 3
    t.character_coverage, t.allow_whitespace_only_pieces, t.hard_vocab_limit = 1.0, True, False
    t.max_sentencepiece_length = longest
    n = m.normalizer_spec
    n.name, n.add_dummy_prefix, n.remove_extra_whitespaces, n.escape_whitespaces = "identity", False, False, escape
    return m.SerializeToString()


def _pieces_wire(raw: Sequence[str], scores: np.ndarray, space: str = SPACE) -> Optional[bytes]:
    """ModelProto `pieces` entries (NORMAL: piece and score) in protobuf's wire format,
    written with numpy rather than as one protobuf object per piece (the cost compared in
    benchmarks/design_figures.py). None
    if a piece has over 120 bytes (its lengths would need two-byte varints). Spaces are
    written as `space`."""
    data = "".join(raw).replace(" ", space).encode("utf-8")
    nbytes = _utf8_lengths(raw, space_bytes=len(space.encode()))
    if len(raw) and nbytes.max() > 120:
        return None
    size = nbytes + 9  # 0x0A len | 0x0A len piece | 0x15 float32
    start = np.cumsum(size) - size
    out = np.empty(int(size.sum()), np.uint8)
    out[start], out[start + 1], out[start + 2], out[start + 3] = 0x0A, nbytes + 7, 0x0A, nbytes
    first = np.cumsum(nbytes) - nbytes  # of each piece in `data`
    out[np.repeat(start + 4 - first, nbytes) + np.arange(len(data))] = np.frombuffer(data, np.uint8)
    out[start + 4 + nbytes] = 0x15
    out[(start + 5 + nbytes)[:, None] + np.arange(4)] = scores.astype("<f4").view(np.uint8).reshape(-1, 4)
    return out.tobytes()


def _utf8_lengths(strings: Sequence[str], space_bytes: int = 1) -> np.ndarray:
    """int64[n]: UTF-8 bytes of each string (a space counting `space_bytes`), vectorised."""
    chars = np.fromiter(map(len, strings), np.int64, len(strings))
    codes = np.frombuffer("".join(strings).encode("utf-32-le", "surrogatepass"), np.uint32)
    per_char = 1 + (codes >= 0x80).astype(np.int64) + (codes >= 0x800) + (codes >= 0x10000)
    per_char[codes == 32] = space_bytes
    total = np.concatenate([[0], np.cumsum(per_char)])
    end = np.cumsum(chars)
    return total[end] - total[end - chars]


_FIXED_NAMES = frozenset([p for p, _ in SPECIALS] + list(BYTE_PIECES))


def _checked(pieces_with_scores: Sequence[tuple[str, float]]) -> tuple[list[str], np.ndarray]:
    """(pieces, float64 scores), refusing what would break the model: pieces must be
    distinct as SentencePiece spells them (" " -> U+2581), non-empty, valid Unicode and
    not a special or byte piece's name; scores finite."""
    raw = [str(p) for p, _ in pieces_with_scores]
    if not raw:
        raise UserError("a Unigram model needs at least one piece besides the specials and bytes; the sampled "
                        "vocabulary is empty (is there any training text?)")
    scores = np.array([s for _, s in pieces_with_scores], dtype=np.float64)
    joined = "".join(raw)
    spelled = {p.replace(" ", SPACE) for p in raw} if SPACE in joined else set(raw)
    if (len(spelled) == len(raw) and "" not in spelled and spelled.isdisjoint(_FIXED_NAMES)
            and np.isfinite(scores).all() and (joined.isascii() or valid_unicode(joined) == joined)):
        return raw, scores
    seen: set[str] = set()
    for p, score in zip(raw, scores.tolist()):
        q = p.replace(" ", SPACE)
        if not q or q in _FIXED_NAMES or q in seen or valid_unicode(q) != q or not np.isfinite(score):
            raise UserError(f"cannot build a Unigram model with the piece {p!r} (score {score}): pieces must be "
                            "distinct non-empty valid text, not a special or byte piece's name, with a finite score")
        seen.add(q)
    return raw, scores


def piece_bytes(pieces_with_scores: Sequence[tuple[str, float]]) -> np.ndarray:
    """int64[V] of `unigram_tokenizer(pieces_with_scores)`: UTF-8 bytes each id stands for
    (specials 0, byte pieces 1, a bytes-only model's placeholder 0), so bits-per-byte needs
    no decoding."""
    sampled = _utf8_lengths([p for p, _ in pieces_with_scores]) if pieces_with_scores else np.zeros(1, np.int64)
    return np.concatenate([np.zeros(len(SPECIALS), np.int64), np.ones(256, np.int64), sampled])


def placeholder_ids(tok) -> list[int]:
    """[NUM_FIXED] for a bytes-only sampled model (its UNUSED placeholder keeps the base's unk
    row, as a special does), else []."""
    sp = getattr(tok, "_sp", None)
    return [NUM_FIXED] if sp is not None and tok.vocab_size > NUM_FIXED and sp.is_unused(NUM_FIXED) else []
