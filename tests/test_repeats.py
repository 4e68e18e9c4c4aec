"""data.repeat_share: training windows with a span of their own text copied further on."""
import numpy as np
import pytest

from lexi.data import repeats
from lexi.data.packing import Batches
from lexi.errors import UserError


def _stream(n=20_000, bos=1, doc=500, seed=0):
    t = np.random.default_rng(seed).integers(2, 60, size=n).astype(np.int32)
    t[::doc] = bos
    return t


def _has_earlier_copy(row, dst, n):
    """row[dst:dst+n] also stands, whole, somewhere before dst."""
    return any(np.array_equal(row[src:src + n], row[dst:dst + n]) for src in range(0, dst - n + 1))


def test_share_of_rows_carry_one_copied_span_and_nothing_else_changes():
    tokens = _stream()
    plain = Batches(tokens, 64, 32, seed=3, bos_id=1)
    rep = Batches(tokens, 64, 32, seed=3, bos_id=1, repeat_share=0.5, repeat_length=16)
    changed = 0
    for step in range(4):
        a, b = plain.batch_at(step), rep.batch_at(step)
        for r in range(32):
            row_a = np.append(a["inputs"][r], a["targets"][r, -1])
            row_b = np.append(b["inputs"][r], b["targets"][r, -1])
            if np.array_equal(row_a, row_b):
                continue
            changed += 1
            diff = np.nonzero(row_a != row_b)[0]  # the overwritten span, less tokens that happened to be equal
            dst, n = diff[0], diff[-1] + 1 - diff[0]
            assert n <= 16 and _has_earlier_copy(row_b, dst, n)
            assert 1 not in row_b[dst:dst + n] and 1 not in row_a[dst:dst + n]  # no document boundary moves
        np.testing.assert_array_equal(a["segment_ids"], b["segment_ids"])
    assert 0.3 < changed / 128 < 0.6  # about half, less the rows whose span would cross a document


def test_rows_are_a_function_of_the_global_row():
    """Resume (any step) and two processes (their halves) see the rows one process sees."""
    tokens = _stream()
    one = Batches(tokens, 64, 8, seed=0, bos_id=1, repeat_share=1.0, repeat_length=16)
    halves = [Batches(tokens, 64, 8, seed=0, bos_id=1, repeat_share=1.0, repeat_length=16,
                      process_index=i, process_count=2) for i in range(2)]
    for step in (5, 0, 5):
        whole = one.batch_at(step)["inputs"]
        np.testing.assert_array_equal(np.concatenate([h.batch_at(step)["inputs"] for h in halves]), whole)


def test_bad_settings_are_clear_errors():
    with pytest.raises(UserError, match="repeat_share must be in"):
        repeats.check(1.5, 16, 64)
    with pytest.raises(UserError, match="repeat_length must be in"):
        repeats.check(0.5, 40, 64)
    repeats.check(0.0, 40, 64)  # off: the length is not used
