"""DALL-E 1 (Ramesh et al. 2021): ``trainer.py`` (the frozen stage's codes, the caption
padding, the 1/8-7/8 loss, super-conditioning, sampling, CLIP re-ranking, evaluation),
``networks.py`` (the GPT transformer with row and column image positions, its sparse
attention masks and key-value cache), ``sampling.py`` (temperature, top-k, top-p, the
cached and uncached loops), ``rerank.py`` (captions as the CLIP reranker reads them).
The discrete autoencoders are families of their own (dvae, vqvae), so is CLIP.
Configs: configs/dalle_*.py. Tests: tests/test_dalle.py."""
