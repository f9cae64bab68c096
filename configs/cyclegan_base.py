"""The cyclegan family's fields and their defaults: the MNIST-5k default of
configs/cyclegan_mnist.py (plain <-> restyled digits, ResNet generators with 4
blocks, 70x70 PatchGANs, instance norm, LSGAN loss, cycle weight 10, identity 0.5,
image pools of 50). Not a runnable config: ``base()`` is what the family's configs
start from; ``tiny(c)`` is what their ``tiny`` variants share."""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def styles_data(**changes) -> ml_collections.ConfigDict:
  """``config.data``: MNIST-5k plain <-> restyled digits (``mnist5k_styles``)."""
  return common.image_data("mnist5k_styles", derived_seed=0, scale="symmetric",
                           **changes)


def base() -> ml_collections.ConfigDict:
  return common.config(
      "cyclegan",
      data=styles_data(),
      model=ml_collections.ConfigDict(dict(
          generator="resnet_4blocks", ngf=8, ndf=16, n_layers_d=3, norm="instance",
          use_dropout=False)),
      cyclegan=ml_collections.ConfigDict(dict(
          gan_loss="lsgan", lambda_a=10.0, lambda_b=10.0, lambda_identity=0.5,
          pool_size=50, styles_metrics=True)),
      # 8,000 steps of batch 2 (3.6 passes over the 4,500 digits; about 5 min here):
      # against 2,000, G(a) keeps a's digit 0.95 instead of 0.90 and F(b) (dark
      # backgrounds) 0.976 instead of 0.953 (docs/results.md, cyclegan_mnist rows).
      optim=common.translation_optim(num_steps=8000),
      train=common.train(batch_size=2, num_steps=8000, log_every=100,
                         num_samples=16),
      eval=common.evaluation(metrics=("styles",), num_samples=500,
                             sample_batch_size=100))


def tiny(c: ml_collections.ConfigDict, batch_size: int, pool_size: int) -> None:
  """Shrinks ``c`` to seconds, for tests: 2 channels, one residual block, an image
  pool of ``pool_size``, 2 steps of ``batch_size``."""
  c.model.update(ngf=2, ndf=2, generator="resnet_1blocks")
  c.cyclegan.pool_size = pool_size
  c.train.update(common.tiny_train(batch_size=batch_size, num_steps=2, log_every=1))
  for player in (c.optim.generator, c.optim.discriminator):
    player.constant_steps = 1
