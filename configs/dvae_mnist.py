r"""The DALL-E discrete VAE on MNIST-5k (4,500 train / 500 test digits, offline).

  python -m jaxgen.main --config=configs/dvae_mnist.py --workdir=/tmp/dvae_mnist

Variants (comma-separated after the colon):
  (default) the DALL-E architecture at a small size: 3 groups (28x28 -> 7x7 codes),
            n_hid 32, 1 block per group, n_init 32, K = 512 codes; logit-Laplace
            likelihood (eps 0.1); Gumbel temperature cosine 1 -> 1/16 over the run,
            KL weight linear 0 -> 6.6 over the first 500 steps (the paper: 5,000 of
            its 3M), Adam with a cosine learning-rate decay; 2,000 steps of batch
            64. Measured 2026-12-02: 57 min wall on the 2-core CPU shared with ~10
            other jobs (load 9-21): test PSNR 14.6 dB, 206 of 512 codes used,
            perplexity 47.1, 1.72 bits/dim.
  tiny      seconds: for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "dvae_mnist", {"tiny"})
  c = ml_collections.ConfigDict()
  c.family = "dvae"
  c.seed = 0
  c.compute = common.compute()
  c.data = common.mnist5k_data(scale="unit")
  c.model = ml_collections.ConfigDict(dict(
      group_count=3, n_hid=32, n_blk_per_group=1, n_init=32, vocab_size=512,
      logit_laplace_eps=0.1))
  c.optim = ml_collections.ConfigDict(dict(
      name="adam", learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
      schedule="cosine", warmup_steps=50, end_factor=0.05, grad_clip_norm=1.0,
      ema_decay=0.0))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=64, num_steps=2000, log_every=50, checkpoint_every=1000,
      sample_every=1000, keep_checkpoints=3, num_samples=64))
  # The relaxation's temperature and the KL weight, as the learning rate: optax
  # schedules of the step (jaxgen/trainers/dvae.py make_schedule).
  c.schedules = ml_collections.ConfigDict(dict(
      temperature=dict(kind="cosine", init=1.0, end=1 / 16, steps=2000),
      kl_weight=dict(kind="linear", init=0.0, end=6.6, steps=500)))
  # No sample metrics: the dVAE's own samples decode uniformly drawn codes.
  c.eval = ml_collections.ConfigDict(dict(
      split="test", batch_size=100, num_examples=0, metrics=()))
  if "tiny" in variants:
    c.model.update(group_count=2, n_hid=8, n_init=8, vocab_size=16)
    c.train.update(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    c.optim.warmup_steps = 1
    c.schedules.temperature.steps = 4
    c.schedules.kl_weight.steps = 2
    c.eval.update(batch_size=8, num_examples=16)
  return c
