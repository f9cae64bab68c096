r"""DCGAN (Radford et al. 2016) on MNIST-5k at 28x28 (7x7 -> 14x14 -> 28x28).

  python -m jaxgen.main --config=configs/dcgan_mnist.py --workdir=/tmp/dcgan_mnist

Variants (comma-separated after the colon):
  (default) ngf = ndf = 32, nz = 100, non-saturating loss, Adam 2e-4 beta1 0.5 for
            both players, batch 64, EMA 0.99 of the generator, 3,000 steps
            (docs/results.md, "Training runs", dcgan_mnist).
  nearest   nearest 2x upsampling + 3x3 convolutions in the generator instead of
            4x4 stride-2 transposed convolutions (docs/results.md, "Throughput",
            dcgan_mnist; the transposed convolutions are computed by phases,
            jaxgen/families/gan/networks.py).
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
gan = config_file.module_beside(__file__, "gan_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "dcgan_mnist", {"tiny", "nearest"})
  c = gan.base()
  c.model = gan.dcgan_model()
  # EMA 0.99: over 3,000 steps, 0.999 kept too much of the early generator
  # (docs/results.md, "Training runs", dcgan_mnist).
  c.optim.ema_decay = 0.99
  c.train.update(num_steps=3000, log_every=50, checkpoint_every=1000,
                 sample_every=1000)
  if "nearest" in variants:
    c.model.upsample = "nearest"
  if "tiny" in variants:
    c.model.update(latent_dim=8, ngf=4, ndf=4)
    gan.tiny(c)
  return c
