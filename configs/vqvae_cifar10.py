r"""VQ-VAE on CIFAR-10: sonnet's example (examples/vqvae_example.ipynb).

  python -m jaxgen.main --config=configs/vqvae_cifar10.py:paper --mode=summary
  python -m jaxgen.main --config=configs/vqvae_cifar10.py:paper --workdir=/tmp/vqvae_cifar10

Needs CIFAR-10 through tensorflow-datasets (prepared where the machine has internet).

Variants (comma-separated after the colon):
  paper     sonnet's CIFAR-10 VQ-VAE: 128 hidden channels, 2 residual layers of 32,
            32x32 -> 8x8 codes, K = 512, D = 64, beta 0.25, EMA codebook (decay
            0.99), Adam 3e-4, batch 32, 100k steps: 695,491 parameters (encoder with
            its pre-VQ 1x1 convolution 372,416, codebook 32,768, decoder 290,307).
            The paper's result: 4.67 bits/dim (see jaxgen/trainers/vqvae.py for how
            jaxgen computes bits/dim).
  tiny      seconds, on the offline sklearn digits resized to 32x32: for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "vqvae_cifar10", {"tiny", "paper"})
  c = ml_collections.ConfigDict()
  c.family = "vqvae"
  c.seed = 0
  c.compute = common.compute()
  c.data = ml_collections.ConfigDict(dict(
      name="cifar10", scale="unit", binarize="", dequantize=False, resize=(),
      random_flip=False, tfds_data_dir="", workers=0))
  c.model = ml_collections.ConfigDict(dict(
      num_hiddens=128, num_residual_layers=2, num_residual_hiddens=32,
      num_downsamples=2, num_codes=512, code_dim=64, beta=0.25, codebook="ema",
      ema_decay=0.99, ema_epsilon=1e-5, restart_after=0,
      # sonnet's example divides the error by the variance of the training pixels
      # (CIFAR-10 in [0, 1]: about 0.063).
      data_variance=0.063))
  c.optim = ml_collections.ConfigDict(dict(
      name="adam", learning_rate=3e-4, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
      schedule="constant", warmup_steps=0, end_factor=1.0, grad_clip_norm=0.0,
      ema_decay=0.0))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=32, num_steps=100_000, log_every=100, checkpoint_every=5000,
      sample_every=5000, keep_checkpoints=3, num_samples=64))
  c.eval = ml_collections.ConfigDict(dict(
      split="test", batch_size=100, num_examples=0, metrics=()))
  if "tiny" in variants:
    c.data.update(name="digits", resize=(32, 32), workers=0)
    c.model.update(num_hiddens=8, num_residual_layers=1, num_residual_hiddens=4,
                   num_codes=16, code_dim=4)
    c.train.update(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    c.optim.update(warmup_steps=0)
    c.eval.update(batch_size=8, num_examples=16)
  return c
