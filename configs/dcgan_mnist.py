r"""DCGAN (Radford et al. 2016) on MNIST-5k at 28x28 (7x7 -> 14x14 -> 28x28).

  python -m jaxgen.main --config=configs/dcgan_mnist.py --workdir=/tmp/dcgan_mnist

Variants (comma-separated after the colon):
  (default) ngf = ndf = 32, nz = 100, non-saturating loss, Adam 2e-4 beta1 0.5 for
            both players, batch 64, EMA 0.99 of the generator, 3,000 steps: 16-20
            steps/s, 3 min 44 s on a shared 2-core CPU including evaluation;
            recognisable digits, many of them malformed (FID 169, IS 6.5 from 1,000
            samples in the MNIST classifier's features, where 500 real test digits
            give FID 29).
  nearest   nearest 2x upsampling + 3x3 convolutions in the generator instead of
            4x4 stride-2 transposed convolutions: 9.1 steps/s against 15.7 (the
            transposed convolutions are computed by phases, jaxgen/models/gan.py;
            through lax.conv_transpose the step ran at 7.5 steps/s).
  tiny      seconds: for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "dcgan_mnist", {"tiny", "nearest"})
  c = ml_collections.ConfigDict()
  c.family = "gan"
  c.seed = 0
  c.compute = common.compute()
  c.data = common.mnist5k_data(scale="symmetric")
  c.model = ml_collections.ConfigDict(dict(
      arch="dcgan", latent_dim=100, ngf=32, ndf=32, upsample="transpose",
      d_batch_norm=True, conditioning="", num_classes=0))
  c.gan = ml_collections.ConfigDict(dict(
      loss="nonsaturating", d_steps=1, r1_gamma=0.0, aux_weight=1.0))
  player = dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, eps=1e-8,
                schedule="constant", warmup_steps=0, grad_clip_norm=0.0)
  # EMA 0.99: over 3,000 steps, 0.999 kept too much of the early generator (FID 255
  # against 165 without EMA in dcgan_mnist).
  c.optim = ml_collections.ConfigDict(dict(
      generator=dict(player), discriminator=dict(player), ema_decay=0.99))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=64, num_steps=3000, log_every=50, checkpoint_every=1000,
      sample_every=1000, keep_checkpoints=3, num_samples=64))
  c.eval = common.mnist_classifier_eval(split="test", batch_size=100,
                                       num_examples=0)
  if "nearest" in variants:
    c.model.upsample = "nearest"
  if "tiny" in variants:
    c.model.update(latent_dim=8, ngf=4, ndf=4)
    c.train.update(batch_size=8, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    c.eval.update(batch_size=8, num_examples=16, num_samples=100, sample_batch_size=50)
  return c
