r"""The original GAN (Goodfellow et al. 2014) with MLP players, on toy 2-D data.

  python -m jaxgen.main --config=configs/gan_toy2d.py --workdir=/tmp/gan_toy2d

Variants (comma-separated after the colon):
  (default) eight Gaussians on a circle; ReLU generator 16 -> 128 -> 128 -> 2,
            LeakyReLU discriminator 2 -> 128 -> 128 -> 1, non-saturating loss,
            Adam 1e-3 beta1 0.5, batch 256; 5,000 steps at ~400 steps/s, 20-25 s
            on a 2-core CPU. The generator lands on 4-6 of the 8 modes (seen over
            seeds and with 10,000 steps): the mode dropping of the plain GAN.
  two_moons, swiss_roll   the other toy distributions.
  tiny      seconds: for tests.
The picture is a scatter plot of real (blue) and generated (red) points over the
discriminator's D(x) (darker = more 'real'); ``generate`` returns the points.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")

DISTRIBUTIONS = ("eight_gaussians", "two_moons", "swiss_roll")


def get_config(arg=None):
  variants = common.parse_arg(arg, "gan_toy2d", {"tiny", *DISTRIBUTIONS})
  c = ml_collections.ConfigDict()
  c.family = "gan"
  c.seed = 0
  c.compute = common.compute()
  dist = next((d for d in DISTRIBUTIONS if d in variants), "eight_gaussians")
  c.data = ml_collections.ConfigDict(dict(name="toy2d", distribution=dist,
                                            workers=0))
  c.model = ml_collections.ConfigDict(dict(
      arch="mlp", latent_dim=16, hidden_g=(128, 128), hidden_d=(128, 128),
      g_batch_norm=False, d_dropout=0.0, conditioning="", num_classes=0))
  c.gan = ml_collections.ConfigDict(dict(
      loss="nonsaturating", d_steps=1, r1_gamma=0.0, aux_weight=1.0))
  player = dict(name="adam", learning_rate=1e-3, b1=0.5, b2=0.999, eps=1e-8,
                schedule="constant", warmup_steps=0, grad_clip_norm=0.0)
  c.optim = ml_collections.ConfigDict(dict(
      generator=dict(player), discriminator=dict(player), ema_decay=0.0))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=256, num_steps=5000, log_every=100, checkpoint_every=5000,
      sample_every=1000, keep_checkpoints=3, num_samples=2000))
  c.eval = ml_collections.ConfigDict(dict(split="test", batch_size=1000, num_examples=0,
                                          metrics=()))
  if "tiny" in variants:
    c.model.update(latent_dim=4, hidden_g=(8,), hidden_d=(8,))
    c.train.update(batch_size=8, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2)
    c.eval.update(batch_size=8, num_examples=16)
  return c
