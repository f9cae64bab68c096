r"""DALL-E 1 on mnist5k_captions: a transformer over the caption's words and a frozen
VQ-VAE's 8x8 image codes, re-ranked by a CLIP trained on the same captions.

  python -m jaxgen.main --config=configs/vqvae_mnist.py:captions --workdir=/tmp/vq_captions
  python -m jaxgen.main --config=configs/clip_mnist.py --workdir=/tmp/clip_mnist
  python -m jaxgen.main --config=configs/dalle_mnist.py --workdir=/tmp/dalle_mnist \
      --config.stages.autoencoder=/tmp/vq_captions --config.stages.reranker=/tmp/clip_mnist
  ... the same --mode=eval    # NLL; caption accuracy, CLIP R-precision, CLIPScore and
                              # FID at 1, 8 and 32 candidates
  ... the same --mode=sample  # captions with their candidates, best first
  ... the same --mode=eval --config.eval.shuffled_baseline=True  # + the baseline
  python -m jaxgen.evaluators.ceiling --config=configs/dalle_mnist.py \
      --config.stages.reranker=/tmp/clip_mnist --config.eval.rerank_candidates="()"
  python experiments/dalle_speed.py --workdir=/tmp/dalle_mnist  # cache, encoding

Variants (comma-separated after the colon):
  (default) 4 pre-LN GPT layers of width 128 (4 heads), dense causal attention over 16
            text positions (per-position pad tokens) and 8 x 8 image positions (row +
            column embeddings), the 1/8-7/8 loss; AdamW 1e-3, 3,000 steps of batch 64
            on 8 layouts of each training digit; sampling at temperature 1 from the
            top 256 codes (minDALL-E's defaults) through the key-value cache;
            eval.json at 1, 8 and 32 candidates (500 test captions).
            Over a VQ-VAE stage (configs/vqvae_mnist.py:captions, 128 codes), not the
            paper's dVAE: the MNIST classifier reads 0.94 of the VQ-VAE's test
            reconstructions as the right digit and 0.33 of the dVAE default's
            (docs/results.md, "dalle"), and no transformer can draw a digit its stage
            cannot decode.
  dvae      over the dVAE (configs/dvae_mnist.py:captions, 512 codes), as the paper.
  captions2 the two-digit set (32 x 64 canvases: 8 x 16 codes), its stage and a
            clip_mnist.py:captions2 reranker.
  paper     minDALL-E's stage 2: width 1536, 42 layers, 24 heads, 64 text and 256
            image positions (16 x 16), 16,384 text and image codes, one learned
            embedding per image position and one shared pad id as minDALL-E:
            1,291,081,728 parameters (--mode=summary; training needs a stage of
            16 x 16 codes of 16,384, which jaxgen has no reader for).
  tiny      seconds: for tests (over vqvae_mnist.py:captions,tiny and clip_mnist.py:tiny).
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
dalle = config_file.module_beside(__file__, "dalle_base")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"autoencoder": "vqvae_mnist:captions", "reranker": "clip_mnist"}


def get_config(arg=None):
  variants = common.parse_arg(arg, "dalle_mnist",
                              {"tiny", "dvae", "captions2", "paper"})
  two = "captions2" in variants
  stage = f"{'dvae' if 'dvae' in variants else 'vqvae'}_mnist:captions{'2' if two else ''}"
  c = dalle.base(stage)
  if "paper" in variants:
    c.model.update(width=1536, layers=42, heads=24, text_length=64,
                   text_vocab_size=16384, image_grid=(16, 16), image_vocab_size=16384,
                   image_positions="learned", pad_tokens="shared")
    c.optim.update(learning_rate=1e-4, b2=0.95, weight_decay=1e-4, grad_clip_norm=1.0)
    c.eval.rerank_candidates = (1,)  # with a reranker stage: (1, 32) as minDALL-E
  if "tiny" in variants:
    dalle.tiny(c)
  return c
