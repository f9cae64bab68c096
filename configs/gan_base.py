"""The gan family's fields and their defaults: the MNIST-5k default of
configs/gan_mnist.py (Goodfellow et al. 2014's MLP players, non-saturating loss, Adam
2e-4 beta1 0.5 for both players, EMA 0.999 of the generator). Not a runnable config:
``base()`` is what the family's configs start from; ``dcgan_model()`` holds the
fields of the DCGAN players and ``tiny(c)`` what the ``tiny`` variants share."""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def dcgan_model(**changes) -> ml_collections.ConfigDict:
  """``config.model`` of the DCGAN players (Radford et al. 2016), ngf = ndf = 32."""
  return ml_collections.ConfigDict(dict(dict(
      arch="dcgan", latent_dim=100, ngf=32, ndf=32, upsample="transpose",
      d_batch_norm=True, conditioning="", num_classes=0), **changes))


def optim(ema_decay: float = 0.999, **changes) -> ml_collections.ConfigDict:
  """``config.optim``: the same Adam for both players (``changes`` to it), and the
  decay of the generator's EMA (0: none)."""
  player = dict(dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, eps=1e-8,
                     schedule="constant", warmup_steps=0, grad_clip_norm=0.0),
                **changes)
  return ml_collections.ConfigDict(dict(
      generator=dict(player), discriminator=dict(player), ema_decay=ema_decay))


def base() -> ml_collections.ConfigDict:
  return common.config(
      "gan",
      data=common.mnist5k_data(scale="symmetric"),
      model=ml_collections.ConfigDict(dict(
          arch="mlp", latent_dim=100, hidden_g=(256, 512, 1024), hidden_d=(512, 256),
          g_batch_norm=True, d_dropout=0.3, conditioning="", num_classes=0)),
      gan=ml_collections.ConfigDict(dict(
          loss="nonsaturating", d_steps=1, r1_gamma=0.0, aux_weight=1.0)),
      optim=optim(),
      train=common.train(num_steps=10_000, log_every=100, checkpoint_every=2000,
                         sample_every=2000),
      eval=common.mnist_classifier_eval(metrics=common.DIGIT_METRICS))


def tiny(c: ml_collections.ConfigDict, **train) -> None:
  """Shrinks ``c``'s training and evaluation to seconds, for tests: 2 steps of
  ``common.tiny_train(**train)``, 16 examples evaluated and, where ``c`` has sample
  metrics, 100 samples."""
  c.train.update(common.tiny_train(num_steps=2, log_every=1, **train))
  c.eval.update(batch_size=8, num_examples=16)
  if "num_samples" in c.eval:
    c.eval.update(num_samples=100, sample_batch_size=50,
                  metrics=common.tiny_metrics(c.eval.metrics))
