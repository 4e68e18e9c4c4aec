"""benchmarks/zett_table.py (the README's ZeTT table): each target's donor is trained on exactly
that tokenizer, and the table marks the best row of each target."""
import os
import sys

from lexi import tokenizers
from lexi.config import load_config
from lexi.rundir import tokenizer_from_config

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))


def test_a_donor_is_configured_with_its_target_tokenizer(kjv_docs, tmp_path):
    import zett_table as zt
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    sp = tokenizers.train_sentencepiece(kjv_docs[:20], 400, tmp_path / "cache")
    sp.save(tmp_path / "sp")
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    hf.train_from_iterator(kjv_docs[:5], trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf.save(str(tmp_path / "hf.json"))
    for spec in (str(tmp_path / "sp"), str(tmp_path / "hf.json"), "byte"):
        cfg = load_config("configs/standard.py:small", zt.donor_overrides(spec, 300, smoke=False))
        made = tokenizer_from_config(cfg)
        assert made.token_bytes() == tokenizers.load(spec).token_bytes(), spec
        assert (cfg.model.d_model, cfg.model.num_layers, cfg.train.steps, cfg.train.batch_size) == (256, 2, 300, 16)


def test_the_table_bolds_the_best_row_of_each_target():
    import zett_table as zt

    row = {"tokenizer": "t", "target_vocab_size": 10, "tokens_per_byte": {"target": 0.5},
           "bits_per_byte": {"original": 1.0, "hypernet": 2.0, "fvt": 1.5, "omp": 3.0, "tokenadapt": 1.6,
                             "lexical": 2.5, "random": 4.0},
           "hypernet": {"z": 2.0}, "seconds_to_make_rows": {"hypernet": 1.0, "fvt": 0.1}}
    text = zt.table({"zett_workdirs": ["z"], "targets": {"t": row}})
    line = next(l for l in text.splitlines() if l.startswith("| t "))
    assert line == "| t (10, 0.500) | 1.000 | 2.000 | **1.500** | 3.000 | 1.600 | 2.500 | 4.000 |"
