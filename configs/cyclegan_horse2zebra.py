r"""CycleGAN (Zhu et al. 2017) on horse2zebra, as the paper.

  python -m jaxgen.data.prepare cycle_gan/horse2zebra   # once, where the internet is
  python -m jaxgen.main --config=configs/cyclegan_horse2zebra.py:paper --mode=summary
  python -m jaxgen.main --config=configs/cyclegan_horse2zebra.py --workdir=/tmp/h2z

Variants (comma-separated after the colon):
  paper     (= the default) two resnet_9blocks generators (ngf 64, reflection padding,
            instance norm, no dropout): 11,378,179 parameters each; two 70x70
            PatchGANs (ndf 64, n_layers 3, instance norm): 2,764,737 each, as
            junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py. LSGAN loss,
            cycle weight 10, identity 0.5 x 10, image pools of 50; Adam 2e-4 beta1
            0.5, batch 1, 200 epochs of tfds cycle_gan/horse2zebra (1,334 examples an
            epoch: the larger domain, the smaller cycled): the rate constant for 100
            epochs, then linear to zero over 100. Images resized to 286, random 256
            crops and mirroring, each domain its own draw.
  tiny      seconds, on mnist5k_styles (no download): for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
cyclegan = config_file.module_beside(__file__, "cyclegan_base")

EPOCH = 1334  # max(|trainA| = 1,067, |trainB| = 1,334)


def get_config(arg=None):
  variants = common.parse_arg(arg, "cyclegan_horse2zebra", {"tiny", "paper"})
  c = cyclegan.base()
  c.data = common.image_data(
      "cycle_gan/horse2zebra", derived_seed=0, scale="symmetric", resize=(256, 256),
      jitter_resize=(286, 286), random_flip=True)
  c.model.update(generator="resnet_9blocks", ngf=64, ndf=64)
  c.cyclegan.styles_metrics = False
  num_steps = 200 * EPOCH
  c.optim = common.translation_optim(num_steps)
  c.train.update(batch_size=1, num_steps=num_steps, log_every=500,
                 checkpoint_every=5000, sample_every=5000, num_samples=8)
  c.eval = common.evaluation(batch_size=1, num_samples=120, sample_batch_size=1)
  if "tiny" in variants:
    c.data = cyclegan.styles_data(resize=(32, 32), jitter_resize=(36, 36),
                                  random_flip=True)
    cyclegan.tiny(c, batch_size=2, pool_size=2)
    c.eval.update(batch_size=4, num_examples=8, num_samples=8, sample_batch_size=4)
  return c
