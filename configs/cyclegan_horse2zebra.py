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
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")

EPOCH = 1334  # max(|trainA| = 1,067, |trainB| = 1,334)


def get_config(arg=None):
  variants = common.parse_arg(arg, "cyclegan_horse2zebra", {"tiny", "paper"})
  c = ml_collections.ConfigDict()
  c.family = "cyclegan"
  c.seed = 0
  c.compute = common.compute()
  c.data = ml_collections.ConfigDict(dict(
      name="cycle_gan/horse2zebra", derived_seed=0, scale="symmetric", binarize="",
      dequantize=False, resize=(256, 256), jitter_resize=(286, 286), random_flip=True,
      tfds_data_dir="", workers=0))
  c.model = ml_collections.ConfigDict(dict(
      generator="resnet_9blocks", ngf=64, ndf=64, n_layers_d=3, norm="instance",
      use_dropout=False))
  c.cyclegan = ml_collections.ConfigDict(dict(
      gan_loss="lsgan", lambda_a=10.0, lambda_b=10.0, lambda_identity=0.5,
      pool_size=50, styles_metrics=False))
  num_steps = 200 * EPOCH
  player = dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, eps=1e-8,
                weight_decay=0.0, schedule="constant_then_linear", warmup_steps=0,
                constant_steps=100 * EPOCH, end_factor=0.0, grad_clip_norm=0.0)
  c.optim = ml_collections.ConfigDict(dict(
      generator=dict(player), discriminator=dict(player), ema_decay=0.0))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=1, num_steps=num_steps, log_every=500, checkpoint_every=5000,
      sample_every=5000, keep_checkpoints=3, num_samples=8))
  c.eval = ml_collections.ConfigDict(dict(
      split="test", batch_size=1, num_examples=0, metrics=(), num_samples=120,
      sample_batch_size=1))
  if "tiny" in variants:
    c.data = ml_collections.ConfigDict(dict(
        name="mnist5k_styles", derived_seed=0, scale="symmetric", binarize="",
        dequantize=False, resize=(32, 32), jitter_resize=(36, 36), random_flip=True,
        tfds_data_dir="", workers=0))
    c.model.update(ngf=2, ndf=2, generator="resnet_1blocks")
    c.cyclegan.pool_size = 2
    c.train.update(batch_size=2, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    for player in (c.optim.generator, c.optim.discriminator):
      player.constant_steps = 1
    c.eval.update(batch_size=4, num_examples=8, num_samples=8, sample_batch_size=4)
  return c
