"""Zero-shot tokenizer transfer (ZeTT): a hypernetwork that maps any tokenizer's vocabulary
to embedding matrices for a frozen lexi language model, so the model can run with a new
tokenizer without training. sampler.py samples a fresh tokenizer per training step and
encodes that step's text with it; vocab.py decomposes vocabularies into base pieces;
hypernet.py is the model side (its matrices reach the frozen base through the "predicted"
embedding family, lexi/embeddings/predicted.py), task.py the training task, transfer.py
and evaluate.py turn a trained hypernetwork (or a baseline) into matrices and measure them;
transplant.py holds the training-free methods from the literature (OMP, TokenAdapt).
"""
