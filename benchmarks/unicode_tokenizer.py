"""The unicode tokenizer on the KJV: characters per token and encode speed.

Run: python benchmarks/unicode_tokenizer.py [--ngrams 8000] [--max-n 3]
Prints n-gram learning time, chars/token on the train split and on the held-out
validation chapters, and the CPU seconds to encode the whole train split (best of 3),
with and without n-grams. Measured figures: lexi/tokenizers/unicode.py's docstring.
Then the same for the ASCII `char` tokenizer, on the train split as it is (all ASCII) and
with one non-ASCII character appended (its replacing path); both should take well under a second.
"""
import argparse
import tempfile
import time

from lexi import tokenizers
from lexi.data.corpora import KJV
from lexi.tokenizers.unicode_ngrams import train_unicode


def best_cpu_seconds(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ngrams", type=int, default=8000)
    ap.add_argument("--max-n", type=int, default=3)
    args = ap.parse_args()
    train = list(KJV().documents("train"))
    val = "\n".join(KJV().documents("validation"))
    text = "\n".join(train)
    t0 = time.process_time()
    tok = train_unicode(train, args.ngrams, tempfile.mkdtemp(), max_n=args.max_n, key="bench")
    learn = time.process_time() - t0
    pure = tokenizers.load("unicode")
    print(f"n-grams {args.ngrams} (max_n {args.max_n}): learned in {learn:.2f} CPU s")
    print(f"chars/token train {len(text) / len(tok.encode_np(text)):.2f}, "
          f"validation {len(val) / len(tok.encode_np(val)):.2f}")
    print(f"encode {len(text) / 1e6:.2f} M chars: {best_cpu_seconds(lambda: tok.encode_np(text)):.2f} CPU s with "
          f"n-grams, {best_cpu_seconds(lambda: pure.encode_np(text)):.3f} CPU s without")
    char = tokenizers.CharTokenizer()
    ascii_s = best_cpu_seconds(lambda: char.encode_np(text))
    mixed_s = best_cpu_seconds(lambda: char.encode_np(text + "\u00e9"))
    print(f"char tokenizer, encode {len(text) / 1e6:.2f} M chars: {ascii_s:.3f} CPU s ASCII, "
          f"{mixed_s:.3f} CPU s with one non-ASCII char")


if __name__ == "__main__":
    main()
