r"""The original GAN (Goodfellow et al. 2014) with MLP players, on toy 2-D data.

  python -m jaxgen.main --config=configs/gan_toy2d.py --workdir=/tmp/gan_toy2d

Variants (comma-separated after the colon):
  (default) eight Gaussians on a circle; ReLU generator 16 -> 128 -> 128 -> 2,
            LeakyReLU discriminator 2 -> 128 -> 128 -> 1, non-saturating loss,
            Adam 1e-3 beta1 0.5, batch 256; 5,000 steps. The generator lands on a
            part of the 8 modes, the mode dropping of the plain GAN
            (docs/results.md, "Training runs", gan_toy2d).
  two_moons, swiss_roll   the other toy distributions.
  tiny      seconds: for tests.
The picture is a scatter plot of real (blue) and generated (red) points over the
discriminator's D(x) (darker = more 'real'); ``generate`` returns the points.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
gan = config_file.module_beside(__file__, "gan_base")

DISTRIBUTIONS = ("eight_gaussians", "two_moons", "swiss_roll")


def get_config(arg=None):
  variants = common.parse_arg(arg, "gan_toy2d", {"tiny", *DISTRIBUTIONS})
  c = gan.base()
  dist = next((d for d in DISTRIBUTIONS if d in variants), "eight_gaussians")
  c.data = ml_collections.ConfigDict(dict(name="toy2d", distribution=dist,
                                            workers=0))
  c.model.update(latent_dim=16, hidden_g=(128, 128), hidden_d=(128, 128),
                 g_batch_norm=False, d_dropout=0.0)
  c.optim = gan.optim(learning_rate=1e-3, ema_decay=0.0)
  c.train.update(batch_size=256, num_steps=5000, checkpoint_every=5000,
                 sample_every=1000, num_samples=2000)
  c.eval = common.evaluation(batch_size=1000)
  if "tiny" in variants:
    c.model.update(latent_dim=4, hidden_g=(8,), hidden_d=(8,))
    gan.tiny(c, num_samples=c.train.num_samples)  # all 2,000 points
  return c
