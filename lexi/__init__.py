"""lexi: language models whose token embeddings are not a learned lookup table."""

__version__ = "0.1.0"
