r"""CycleGAN (Zhu et al. 2017) on MNIST-5k plain <-> restyled digits (``mnist5k_styles``).

  python -m jaxgen.main --config=configs/cyclegan_mnist.py --workdir=/tmp/cyclegan_mnist

Variants (comma-separated after the colon):
  (default) 28x28 RGB digits; two ResNet generators (reflection padding, instance
            norm, 4 residual blocks, ngf 8) and two 70x70 PatchGANs (instance norm, ndf
            16); LSGAN loss, cycle weight 10, identity weight 0.5 x 10, an image pool
            of 50 fakes per discriminator; Adam 2e-4 beta1 0.5, the rate constant for
            the first half of the steps then linear to zero; batch 2 (the paper's 1
            on 256x256 photos). Evaluated on the aligned test split: L1 / SSIM of
            G(a) against the true restyled digit (and of F(b) against the digit),
            class kept by F(G(a)), cycle errors, FID of the translations in the MNIST
            classifier's features.
  tiny      seconds: for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "cyclegan_mnist", {"tiny"})
  c = ml_collections.ConfigDict()
  c.family = "cyclegan"
  c.seed = 0
  c.compute = common.compute()
  c.data = ml_collections.ConfigDict(dict(
      name="mnist5k_styles", derived_seed=0, scale="symmetric", binarize="",
      dequantize=False, resize=(), random_flip=False, tfds_data_dir="",
      workers=0))
  c.model = ml_collections.ConfigDict(dict(
      generator="resnet_4blocks", ngf=8, ndf=16, n_layers_d=3, norm="instance",
      use_dropout=False))
  c.cyclegan = ml_collections.ConfigDict(dict(
      gan_loss="lsgan", lambda_a=10.0, lambda_b=10.0, lambda_identity=0.5,
      pool_size=50, styles_metrics=True))
  num_steps = 2000
  player = dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, eps=1e-8,
                weight_decay=0.0, schedule="constant_then_linear", warmup_steps=0,
                constant_steps=num_steps // 2, end_factor=0.0, grad_clip_norm=0.0)
  c.optim = ml_collections.ConfigDict(dict(
      generator=dict(player), discriminator=dict(player), ema_decay=0.0))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=2, num_steps=num_steps, log_every=100, checkpoint_every=1000,
      sample_every=1000, keep_checkpoints=3, num_samples=16))
  c.eval = ml_collections.ConfigDict(dict(
      split="test", batch_size=100, num_examples=0, metrics=("styles",),
      num_samples=500, sample_batch_size=100))
  if "tiny" in variants:
    c.model.update(ngf=2, ndf=2, generator="resnet_1blocks")
    c.cyclegan.pool_size = 3
    c.train.update(batch_size=4, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    for player in (c.optim.generator, c.optim.discriminator):
      player.constant_steps = 1
    c.eval.update(batch_size=8, num_examples=16, num_samples=16, sample_batch_size=8)
  return c
