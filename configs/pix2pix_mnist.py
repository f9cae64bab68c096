r"""Pix2Pix (Isola et al. 2017) on MNIST-5k edges -> digits (``mnist5k_edges``), offline.

  python -m jaxgen.main --config=configs/pix2pix_mnist.py --workdir=/tmp/pix2pix_mnist

Variants (comma-separated after the colon):
  (default) the digits resized to 32x32 (a 5-level U-Net halves 32 to 1x1, as
            unet_256 halves 256), ngf = ndf = 32, BatchNorm, dropout 0.5 at the
            middle level, the 70x70 PatchGAN (n_layers=3) on the concatenated pair,
            vanilla GAN loss + 100 L1, Adam 2e-4 beta1 0.5, the rate constant for the
            first half of the steps then linear to zero; jitter 36 -> random 32 crop,
            drawn jointly for the pair (no mirroring: digits are not symmetric);
            batch 16 (the paper's batch 1 on 256x256 facades would take hours here).
            Evaluated on the 500 test pairs: L1, PSNR, SSIM of G(edges) against the
            digit, with the paper's test mode (dropout on, per-image statistics).
  tiny      seconds: for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "pix2pix_mnist", {"tiny"})
  c = ml_collections.ConfigDict()
  c.family = "pix2pix"
  c.seed = 0
  c.compute = common.compute()
  c.data = ml_collections.ConfigDict(dict(
      name="mnist5k_edges", scale="symmetric", binarize="", dequantize=False,
      resize=(32, 32), jitter_resize=(36, 36), random_flip=False, tfds_data_dir="",
      workers=0))
  c.model = ml_collections.ConfigDict(dict(
      generator="unet", num_downs=5, ngf=16, ndf=16, n_layers_d=3, norm="batch",
      use_dropout=True))
  c.pix2pix = ml_collections.ConfigDict(dict(
      gan_loss="vanilla", l1_weight=100.0, test_mode="paper"))
  num_steps = 2000
  player = dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, eps=1e-8,
                weight_decay=0.0, schedule="constant_then_linear", warmup_steps=0,
                constant_steps=num_steps // 2, end_factor=0.0, grad_clip_norm=0.0)
  c.optim = ml_collections.ConfigDict(dict(
      generator=dict(player), discriminator=dict(player), ema_decay=0.0))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=8, num_steps=num_steps, log_every=100, checkpoint_every=1000,
      sample_every=1000, keep_checkpoints=3, num_samples=16))
  c.eval = ml_collections.ConfigDict(dict(
      split="test", batch_size=100, num_examples=0, metrics=("l1", "psnr", "ssim"),
      num_samples=500, sample_batch_size=100))
  if "tiny" in variants:
    c.model.update(ngf=4, ndf=4)
    c.train.update(batch_size=4, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    for player in (c.optim.generator, c.optim.discriminator):
      player.constant_steps = 1
    c.eval.update(batch_size=8, num_examples=16, num_samples=16, sample_batch_size=8)
  return c
