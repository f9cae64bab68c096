r"""The original GAN (Goodfellow et al. 2014) with MLP players, on MNIST-5k.

  python -m jaxgen.main --config=configs/gan_mnist.py --workdir=/tmp/gan_mnist

Variants (comma-separated after the colon):
  (default) ReLU generator 100 -> 256 -> 512 -> 1024 -> 784 (tanh; BatchNorm on the
            last two hidden layers), LeakyReLU(0.2) discriminator 784 -> 512 -> 256
            -> 1 with dropout 0.3 (without these two, the generator collapsed to a
            few digits on these 4,500 training digits), non-saturating loss, Adam
            2e-4 beta1 0.5 for both players, batch 64, EMA 0.999 of the generator;
            10,000 steps at 36-40 steps/s, 5.4 min on a shared 2-core CPU: varied
            digits, some blurred (FID 61, IS 7.6 from 1,000 samples in the MNIST
            classifier's features; 500 real test digits give FID 29).
  minimax   the saturating generator loss log(1 - D(G(z))) of the paper's equation.
  tiny      seconds: for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "gan_mnist", {"tiny", "minimax"})
  c = ml_collections.ConfigDict()
  c.family = "gan"
  c.seed = 0
  c.compute = common.compute()
  c.data = common.mnist5k_data(scale="symmetric")
  c.model = ml_collections.ConfigDict(dict(
      arch="mlp", latent_dim=100, hidden_g=(256, 512, 1024), hidden_d=(512, 256),
      g_batch_norm=True, d_dropout=0.3, conditioning="", num_classes=0))
  c.gan = ml_collections.ConfigDict(dict(
      loss="nonsaturating", d_steps=1, r1_gamma=0.0, aux_weight=1.0))
  player = dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, eps=1e-8,
                schedule="constant", warmup_steps=0, grad_clip_norm=0.0)
  c.optim = ml_collections.ConfigDict(dict(
      generator=dict(player), discriminator=dict(player), ema_decay=0.999))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=64, num_steps=10_000, log_every=100, checkpoint_every=2000,
      sample_every=2000, keep_checkpoints=3, num_samples=64))
  c.eval = common.mnist_classifier_eval(split="test", batch_size=100,
                                       num_examples=0)
  if "minimax" in variants:
    c.gan.loss = "minimax"
  if "tiny" in variants:
    c.model.update(latent_dim=8, hidden_g=(16, 16), hidden_d=(16,))
    c.train.update(batch_size=8, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    c.eval.update(batch_size=8, num_examples=16, num_samples=100, sample_batch_size=50)
  return c
