"""Hugging Face model folders in and out of lexi: `lexi import-hf`, `lexi export-hf`.

architectures.py says which HF architectures map onto lexi's backbone and how each tensor
moves; safetensors.py reads and writes the weight files; convert.py does the two commands.
"""
