r"""StyleGAN2 (Karras et al. 2020) with ADA on MNIST-5k, padded from 28x28 to 32x32.

  python -m jaxgen.main --config=configs/stylegan2_mnist.py --workdir=/tmp/stylegan2_mnist

The networks, losses and schedule of NVlabs' stylegan2-ada-pytorch at a small size,
on the reference's recipe for 32x32 images (its train.py --cfg=cifar): a 2-layer
mapping of 128 (lr multiplier 0.01, w_avg decay 0.995), synthesis 4 -> 32 in the
``skip`` architecture with 32 channels at every resolution, the ``orig``
discriminator with minibatch std (group 4), conv clamp 256; non-saturating loss, lazy
R1 (gamma 0.01 every 16 steps), no path-length regularisation and no style mixing
(as the reference's cifar recipe), Adam 0.0025 with betas (0, 0.99) and the
lazy-regularisation correction, G_ema with half-life 500 kimg ramped up to 0.05 of the
images seen, ADA ``bgc`` targeting r_t = 0.6 (ada_kimg 100: the reference's 500
adapts too slowly for a run this short). Batch 32, 3,000 steps (96k images), about
2.2 steps/s on this 2-core CPU. Results: README.md. At this size and length the
generator draws a few digit shapes with little variety, and so does NVlabs' own
training loop at the same settings on the same data
(experiments/stylegan2_nvlabs_loop.py: FID 834 against jaxgen's 961, IS 3.63 against
3.29, at 1,500 steps).

Variants (comma-separated after the colon):
  (default) as above.
  auto      the reference's --cfg=auto recipe at batch 16: 8 mapping layers, the
            ``resnet`` discriminator, path length (weight 2, every 4), style mixing
            0.9, gamma 0.1, G_ema half-life 0.5 kimg; 1,000 steps. Measured at step
            849 (51 min under load 10-20): every G_ema sample the same "0"-like shape,
            FID 1528.
  noada     without augmentation.
  tiny      seconds, for tests: the ``auto`` regularisers (R1, path length and style
            mixing every 2 steps) on a 4-channel network.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def model_block(**changes) -> ml_collections.ConfigDict:
  """``config.model`` of the stylegan2 family (the reference's defaults for
  training/networks.py at 32x32 with z = w = 512)."""
  block = dict(
      resolution=32, z_dim=512, w_dim=512, num_classes=0, mapping_layers=8,
      mapping_lr_multiplier=0.01, w_avg_beta=0.995, d_mapping_layers=8,
      channel_base=32768, channel_max=512, g_architecture="skip",
      d_architecture="resnet", conv_clamp=256.0, mbstd_group_size=4,
      mbstd_num_channels=1, truncation_psi=1.0)
  block.update(changes)
  return ml_collections.ConfigDict(block)


def stylegan2_block(**changes) -> ml_collections.ConfigDict:
  """``config.stylegan2``: training/loss.py's and training_loop.py's defaults."""
  block = dict(
      style_mixing_prob=0.9, r1_gamma=10.0, r1_interval=16, pl_weight=2.0,
      pl_interval=4, pl_decay=0.01, pl_batch_shrink=2, ema_kimg=10.0, ema_rampup=0.0,
      augment="", augment_p=0.0, ada_target=0.6, ada_interval=4, ada_kimg=500.0)
  block.update(changes)
  return ml_collections.ConfigDict(block)


def adam(lr: float) -> dict:
  return dict(name="adam", learning_rate=lr, b1=0.0, b2=0.99, eps=1e-8,
              weight_decay=0.0, schedule="constant", warmup_steps=0, end_factor=1.0,
              grad_clip_norm=0.0)


def get_config(arg=None):
  variants = common.parse_arg(arg, "stylegan2_mnist", {"tiny", "noada", "auto"})
  c = ml_collections.ConfigDict()
  c.family = "stylegan2"
  c.seed = 0
  c.compute = common.compute()
  c.data = common.mnist5k_data(scale="symmetric")
  # The reference's recipe for 32x32 (train.py --cfg=cifar): a 2-layer mapping, the
  # ``orig`` discriminator, no path length, no style mixing, gamma 0.01, G_ema with
  # half-life 500 kimg ramped up to 0.05 of the images seen.
  c.model = model_block(z_dim=128, w_dim=128, channel_base=1024, channel_max=32,
                        mapping_layers=2, d_architecture="orig")
  c.stylegan2 = stylegan2_block(style_mixing_prob=0.0, pl_weight=0.0, r1_gamma=0.01,
                                ema_kimg=500.0, ema_rampup=0.05, augment="bgc",
                                ada_kimg=100.0)
  c.optim = ml_collections.ConfigDict(dict(generator=adam(0.0025),
                                           discriminator=adam(0.0025)))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=32, num_steps=3000, log_every=50, checkpoint_every=500,
      sample_every=1000, keep_checkpoints=3, num_samples=64))
  c.eval = common.mnist_classifier_eval(split="test", batch_size=100,
                                       num_examples=0)
  if "auto" in variants:  # the reference's --cfg=auto at 32x32, batch 16
    c.model.update(mapping_layers=8, d_architecture="resnet")
    c.stylegan2.update(style_mixing_prob=0.9, pl_weight=2.0, r1_gamma=0.1, ema_kimg=0.5)
    c.train.update(batch_size=16, num_steps=1000, sample_every=500)
  if "noada" in variants:
    c.stylegan2.augment = ""
  if "tiny" in variants:  # the ``auto`` recipe's regularisers, so that tests run them
    c.model.update(resolution=32, z_dim=8, w_dim=8, mapping_layers=2,
                   d_mapping_layers=2, channel_base=64, channel_max=4,
                   d_architecture="resnet")
    c.stylegan2.update(style_mixing_prob=0.9, pl_weight=2.0, r1_gamma=0.1,
                       ema_kimg=0.5, r1_interval=2, pl_interval=2, ada_interval=1,
                       ada_kimg=0.1)
    c.train.update(batch_size=8, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    c.eval.update(batch_size=8, num_examples=16, num_samples=100, sample_batch_size=50)
  return c
