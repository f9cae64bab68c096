"""The pix2pix family's fields and their defaults: the MNIST-5k default of
configs/pix2pix_mnist.py (edges -> digits at 32x32, a 5-level U-Net, the 70x70
PatchGAN, vanilla GAN loss + 100 L1, the paper's test mode). Not a runnable config:
``base()`` is what the family's configs start from; ``tiny(c)`` is what their
``tiny`` variants share."""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def edges_data(**changes) -> ml_collections.ConfigDict:
  """``config.data``: MNIST-5k edges -> digits resized to 32x32, jittered from 36."""
  return common.image_data("mnist5k_edges", scale="symmetric", resize=(32, 32),
                           jitter_resize=(36, 36), **changes)


def base() -> ml_collections.ConfigDict:
  return common.config(
      "pix2pix",
      data=edges_data(),
      model=ml_collections.ConfigDict(dict(
          generator="unet", num_downs=5, ngf=16, ndf=16, n_layers_d=3, norm="batch",
          use_dropout=True)),
      pix2pix=ml_collections.ConfigDict(dict(
          gan_loss="vanilla", l1_weight=100.0, test_mode="paper")),
      optim=common.translation_optim(num_steps=2000),
      train=common.train(batch_size=8, num_steps=2000, log_every=100,
                         num_samples=16),
      eval=common.evaluation(metrics=("l1", "psnr", "ssim"), num_samples=500,
                             sample_batch_size=100))


def tiny(c: ml_collections.ConfigDict, batch_size: int) -> None:
  """Shrinks ``c`` to seconds, for tests: 4 channels, 2 steps of ``batch_size``."""
  c.model.update(ngf=4, ndf=4)
  c.train.update(common.tiny_train(batch_size=batch_size, num_steps=2, log_every=1))
  for player in (c.optim.generator, c.optim.discriminator):
    player.constant_steps = 1
