"""Stream tags folded into a run's key, so each use of randomness is independent.

The embedding context of a training step draws from EMBED_STREAM (a lexinvariant run's
per-sequence vectors), dropout from DROPOUT_STREAM, and validation and `lexi eval` from
EVAL_STREAM, so the suite and training validation draw alike; sampling's context uses
EMBED_STREAM and its token choices SAMPLE_STREAM.
"""
EMBED_STREAM, DROPOUT_STREAM, EVAL_STREAM = 1, 2, 3
SAMPLE_STREAM = 2  # sampling has no dropout; the value sampled text has always used
