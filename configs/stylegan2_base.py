"""The stylegan2 family's fields and their defaults. ``model_block`` and
``stylegan2_block`` hold NVlabs' stylegan2-ada-pytorch defaults (training/networks.py
at 32x32 with z = w = 512; training/loss.py and training_loop.py); ``base()`` is the
MNIST-5k default of configs/stylegan2_mnist.py (the reference's --cfg=cifar recipe at
a small width). Not a runnable config: ``tiny(c)`` is what the family's ``tiny``
variants share."""
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
  """``config.stylegan2``: training/loss.py's and training_loop.py's defaults, and
  jaxgen's additions (off by default):
    r2_gamma    weight of R2, the zero-centred gradient penalty on the fakes
                (r2_gamma / 2) |grad_x D(G(z))|^2 (Mescheder et al. 2018; R3GAN), in
                the D-regularisation phase beside R1: every ``r1_interval`` steps,
                with R1's lazy-regularisation gain and Adam correction; 0: off.
  and these meanings of the reference's fields:
    augment     '' (none), a preset of the reference's train.py (bgc, blit, geom,
                color), or ``digits``: integer translation, small scaling and small
                rotation only (jaxgen/families/stylegan2/augment.py says why);
    augment_p   the augmentation probability at the start; with ada_target 0, fixed;
    ada_target  ADA's target r_t for D's mean real sign; 0: no adaptation (p fixed at
                augment_p, the reference's --aug=fixed --p)."""
  block = dict(
      style_mixing_prob=0.9, r1_gamma=10.0, r2_gamma=0.0, r1_interval=16,
      pl_weight=2.0, pl_interval=4, pl_decay=0.01, pl_batch_shrink=2, ema_kimg=10.0,
      ema_rampup=0.0, augment="", augment_p=0.0, ada_target=0.6, ada_interval=4,
      ada_kimg=500.0)
  block.update(changes)
  return ml_collections.ConfigDict(block)


def optim(lr: float) -> ml_collections.ConfigDict:
  """``config.optim``: Adam ``lr`` with betas (0, 0.99), constant, for both players."""
  player = common.adam(learning_rate=lr, b1=0.0, b2=0.99, schedule="constant",
                       warmup_steps=0, end_factor=1.0)
  return ml_collections.ConfigDict(dict(generator=dict(player),
                                        discriminator=dict(player)))


def base() -> ml_collections.ConfigDict:
  # The reference's recipe for 32x32 (train.py --cfg=cifar): a 2-layer mapping, the
  # ``orig`` discriminator, no path length, no style mixing, gamma 0.01, G_ema with
  # half-life 500 kimg ramped up to 0.05 of the images seen.
  return common.config(
      "stylegan2",
      data=common.mnist5k_data(scale="symmetric"),
      model=model_block(z_dim=128, w_dim=128, channel_base=1024, channel_max=32,
                        mapping_layers=2, d_architecture="orig"),
      stylegan2=stylegan2_block(style_mixing_prob=0.0, pl_weight=0.0, r1_gamma=0.01,
                                ema_kimg=500.0, ema_rampup=0.05, augment="bgc",
                                ada_kimg=100.0),
      optim=optim(0.0025),
      train=common.train(batch_size=32, num_steps=3000, checkpoint_every=500),
      eval=common.mnist_classifier_eval(metrics=common.DIGIT_METRICS))


def tiny(c: ml_collections.ConfigDict, **train) -> None:
  """Shrinks ``c`` to seconds, for tests: MNIST-5k at 32x32, z = w = 8, 2-layer
  mappings, 4 channels, 2 steps of ``common.tiny_train(**train)``, 16 examples and
  100 samples evaluated."""
  c.data = common.mnist5k_data(scale="symmetric")
  c.model.update(resolution=32, z_dim=8, w_dim=8, mapping_layers=2, d_mapping_layers=2,
                 channel_base=64, channel_max=4)
  c.train.update(common.tiny_train(num_steps=2, log_every=1, **train))
  c.eval = common.mnist_classifier_eval(batch_size=8, num_examples=16, num_samples=100,
                                        sample_batch_size=50)
