r"""DCGAN (Radford et al. 2016) on CelebA at 64x64, as pytorch/examples dcgan/main.py.

  python -m jaxgen.data.prepare celeb_a      # once, where the internet is reachable
  python -m jaxgen.main --config=configs/dcgan_celeba.py --workdir=/tmp/dcgan_celeba

Variants (comma-separated after the colon):
  paper     (= the default) nz = 100, ngf = ndf = 64: 3,576,704 generator and
            2,765,568 discriminator parameters; BCE (non-saturating) loss, Adam 2e-4
            beta1 0.5 for both players, batch 128, 25 epochs of the 162,770
            training faces (31,800 steps). Faces scaled to 64 on the short side and
            centre-cropped to 64x64 (docs/results.md, "Throughput", dcgan_celeba).
  tiny      seconds, on MNIST-5k resized to 32x32 (no CelebA needed): for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
gan = config_file.module_beside(__file__, "gan_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "dcgan_celeba", {"tiny", "paper"})
  c = gan.base()
  c.data = common.image_data("celeb_a", scale="symmetric", resize=(64, 64),
                             center_crop=True)
  c.model = gan.dcgan_model(ngf=64, ndf=64)
  c.optim.ema_decay = 0.0
  c.train.update(batch_size=128, num_steps=31_800)
  c.eval = common.evaluation(batch_size=128, num_examples=10_000)
  if "tiny" in variants:
    c.data.update(name="mnist5k", resize=(32, 32), workers=0)
    c.model.update(latent_dim=8, ngf=4, ndf=4)
    gan.tiny(c)
  return c
