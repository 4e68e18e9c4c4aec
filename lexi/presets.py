"""Model and training shapes shared by the files in configs/, so that a lexinvariant run
and its standard twin have exactly the same backbone, data and schedule."""


def _char_shape(c, *, num_layers: int, d_model: int, mlp_dim: int, seq_len: int, **train):
    """A character-level KJV LM with 4 heads, GELU, RMSNorm and T5 bias, plus its schedule."""
    c.model.update(num_layers=num_layers, d_model=d_model, num_heads=4, head_dim=d_model // 4, mlp_dim=mlp_dim,
                   activation="gelu", norm="rmsnorm", position="t5_bias")
    c.data.update(corpus="kjv", seq_len=seq_len)
    c.data.tokenizer.kind = "char"
    c.train.update(**train)


def apply_tiny_shape(c):
    """2 layers, width 64: the CPU smoke-test size."""
    _char_shape(c, num_layers=2, d_model=64, mlp_dim=256, seq_len=128, steps=300, batch_size=16, lr=3e-3,
                warmup_steps=30, log_every=10, eval_every=100, checkpoint_every=100)


def apply_small_shape(c):
    """4 layers, width 256, context 256, batch 32, 300 steps (configs/*.py:small say how long)."""
    _char_shape(c, num_layers=4, d_model=256, mlp_dim=1024, seq_len=256, steps=300, batch_size=32, lr=2e-3,
                warmup_steps=50, log_every=10, eval_every=100, checkpoint_every=100)


CPU_STEPS = 2400  # configs/*.py:cpu: 19.7M characters, as medium (its docstrings give the measured time)


def apply_medium_shape(c):
    """4 layers, width 128, context 256, batch 32, 2400 steps (20M tokens): the longest
    pair one CPU session holds, each run pinned to one core (configs/*.py:medium give the time)."""
    _char_shape(c, num_layers=4, d_model=128, mlp_dim=512, seq_len=256, steps=2400, batch_size=32, lr=3e-3,
                warmup_steps=100, log_every=20, eval_every=400, checkpoint_every=400)


def apply_cpu_shape(c, steps: int = CPU_STEPS):
    """The medium backbone with the two levers issue 17's study found (benchmarks/RESULTS.md):
    the train split's own characters (69 ids, not 128 ASCII) and 4 heads x 64. One run per core,
    both at once, within one session of the project's 2-core CPU (configs/*.py:cpu give the time)."""
    apply_medium_shape(c)
    c.model.head_dim = 64
    c.data.tokenizer.kind = "corpus_chars"
    c.train.update(steps=steps, warmup_steps=100, eval_every=500, checkpoint_every=250)


def apply_paper_shape(c, vocab_32k: bool = False):
    """Huang et al. 2023: ~150M parameters, Adafactor, cosine 0.01 -> 0.001, 250k steps."""
    c.model.update(num_layers=12, d_model=1024, num_heads=8, head_dim=128, mlp_dim=4096,
                   activation="gelu", norm="rmsnorm", position="t5_bias", dtype="bfloat16")
    c.data.update(corpus="kjv", seq_len=512)
    if vocab_32k:
        c.data.tokenizer.update(kind="sentencepiece", vocab_size=32000, model_type="unigram")
        c.embedding.readout_chunk = 4096  # never hold B x L x 32k logits (or B x 32k x d draws)
    else:
        c.data.tokenizer.kind = "char"
    c.train.update(steps=250_000, batch_size=64, optimizer="adafactor", lr=0.01, schedule="cosine",
                   warmup_steps=1000, end_lr_ratio=0.1, weight_decay=0.0, grad_clip=1.0,
                   log_every=100, eval_every=2000, checkpoint_every=2000)


def apply_demo_shape(c):
    """The README's main job: the tiny backbone trained long enough to show lexinvariance,
    two of them (lexinvariant and standard) in about 6 CPU minutes together (training and evaluation)."""
    apply_tiny_shape(c)
    c.train.update(steps=1200, batch_size=32, lr=3e-3, warmup_steps=100, log_every=20, eval_every=400,
                   checkpoint_every=400)


def demo_config(kind: str):
    """configs/<kind>.py:demo without needing the configs/ folder (used by `lexi demo`)."""
    from lexi.config import base_config

    c = base_config()
    c.embedding = ({"kind": "lexinvariant", "generator": "hash", "readout_chunk": 0, "learn_temperature": True,
                    "init_scale": "ones", "init_scale_value": 1.0}
                   if kind == "lexinvariant" else {"kind": "trainable", "tied": True, "readout_chunk": 0})
    apply_demo_shape(c)
    if kind == "lexinvariant":
        c.train.lr = 1e-2  # measured: it leaves the in-context-unigram plateau sooner than at 3e-3
    return c
