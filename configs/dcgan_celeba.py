r"""DCGAN (Radford et al. 2016) on CelebA at 64x64, as pytorch/examples dcgan/main.py.

  python -m jaxgen.data.prepare celeb_a      # once, where the internet is reachable
  python -m jaxgen.main --config=configs/dcgan_celeba.py --workdir=/tmp/dcgan_celeba

Variants (comma-separated after the colon):
  paper     (= the default) nz = 100, ngf = ndf = 64: 3,576,704 generator and
            2,765,568 discriminator parameters; BCE (non-saturating) loss, Adam 2e-4
            beta1 0.5 for both players, batch 128, 25 epochs of the 162,770
            training faces (31,800 steps). Faces scaled to 64 on the short side and
            centre-cropped to 64x64. On one H200 the train step alone runs 235
            steps/s (2.3 min for the 31,800 steps).
  tiny      seconds, on MNIST-5k resized to 32x32 (no CelebA needed): for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "dcgan_celeba", {"tiny", "paper"})
  c = ml_collections.ConfigDict()
  c.family = "gan"
  c.seed = 0
  c.compute = common.compute()
  c.data = ml_collections.ConfigDict(dict(
      name="celeb_a", scale="symmetric", binarize="", dequantize=False,
      resize=(64, 64), center_crop=True, random_flip=False, tfds_data_dir="",
      workers=0))
  c.model = ml_collections.ConfigDict(dict(
      arch="dcgan", latent_dim=100, ngf=64, ndf=64, upsample="transpose",
      d_batch_norm=True, conditioning="", num_classes=0))
  c.gan = ml_collections.ConfigDict(dict(
      loss="nonsaturating", d_steps=1, r1_gamma=0.0, aux_weight=1.0))
  player = dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, eps=1e-8,
                schedule="constant", warmup_steps=0, grad_clip_norm=0.0)
  c.optim = ml_collections.ConfigDict(dict(
      generator=dict(player), discriminator=dict(player), ema_decay=0.0))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=128, num_steps=31_800, log_every=100, checkpoint_every=2000,
      sample_every=2000, keep_checkpoints=3, num_samples=64))
  c.eval = ml_collections.ConfigDict(dict(split="test", batch_size=128,
                                          num_examples=10_000, metrics=()))
  if "tiny" in variants:
    c.data.update(name="mnist5k", resize=(32, 32), workers=0)
    c.model.update(latent_dim=8, ngf=4, ndf=4)
    c.train.update(batch_size=8, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    c.eval.update(batch_size=8, num_examples=16)
  return c
