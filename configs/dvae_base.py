"""The dvae family's fields and their defaults: the MNIST-5k default of
configs/dvae_mnist.py (the DALL-E discrete VAE at a small size: 3 groups, 28x28 ->
7x7 codes, K = 512, logit-Laplace likelihood, Gumbel temperature and KL weight
schedules). Not a runnable config: ``base()`` is what the family's configs start
from; ``tiny(c)`` is what their ``tiny`` variants share."""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def schedules(temperature_steps: int, kl_weight_steps: int):
  """``config.schedules``: the relaxation's temperature and the KL weight, as the
  learning rate: optax schedules of the step (jaxgen/families/dvae/trainer.py
  make_schedule). The temperature decays from 1 to 1/16 (cosine) over
  ``temperature_steps``; the KL weight grows from 0 to 6.6 (linear) over
  ``kl_weight_steps``."""
  return ml_collections.ConfigDict(dict(
      temperature=dict(kind="cosine", init=1.0, end=1 / 16, steps=temperature_steps),
      kl_weight=dict(kind="linear", init=0.0, end=6.6, steps=kl_weight_steps)))


def base() -> ml_collections.ConfigDict:
  return common.config(
      "dvae",
      data=common.mnist5k_data(),
      model=ml_collections.ConfigDict(dict(
          group_count=3, n_hid=32, n_blk_per_group=1, n_init=32, vocab_size=512,
          logit_laplace_eps=0.1)),
      optim=common.optim(warmup_steps=50, grad_clip_norm=1.0),
      train=common.train(),
      schedules=schedules(temperature_steps=2000, kl_weight_steps=500),
      # No sample metrics (the dVAE's own samples decode uniformly drawn codes);
      # class_accuracy_recon: the MNIST classifier reads each test reconstruction as
      # its input's digit.
      eval=common.mnist_classifier_eval(metrics=("class_accuracy_recon",),
                                        num_samples=500))


def tiny(c: ml_collections.ConfigDict) -> None:
  """Shrinks ``c`` to seconds, for tests: 2 groups of one block, n_hid 8, 16 codes."""
  c.model.update(group_count=2, n_hid=8, n_blk_per_group=1, n_init=8, vocab_size=16)
  c.train.update(common.tiny_train())
  c.schedules = schedules(temperature_steps=4, kl_weight_steps=2)
  c.eval.update(batch_size=8, num_examples=16, metrics=())
