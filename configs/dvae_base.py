"""The dvae family's fields and their defaults: the MNIST-5k default of
configs/dvae_mnist.py (the DALL-E discrete VAE at a small size: 3 groups, 28x28 ->
7x7 codes, K = 512, logit-Laplace likelihood with its scale floored at 0.5, Gumbel
temperature and KL weight schedules, the KL weight scaled to the pixels per code,
4,000 steps). Not a runnable config: ``base()`` is what the
family's configs start from; ``tiny(c)`` is what their ``tiny`` variants share."""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def schedules(temperature_steps: int, kl_weight_steps: int, kl_weight: float = 6.6):
  """``config.schedules``: the relaxation's temperature and the KL weight, as the
  learning rate: optax schedules of the step (jaxgen/families/dvae/trainer.py
  make_schedule). The temperature decays from 1 to 1/16 (cosine) over
  ``temperature_steps``; the KL weight grows from 0 to ``kl_weight`` (the paper's
  6.6) (linear) over ``kl_weight_steps``."""
  return ml_collections.ConfigDict(dict(
      temperature=dict(kind="cosine", init=1.0, end=1 / 16, steps=temperature_steps),
      kl_weight=dict(kind="linear", init=0.0, end=kl_weight, steps=kl_weight_steps)))


def base() -> ml_collections.ConfigDict:
  return common.config(
      "dvae",
      data=common.mnist5k_data(),
      model=ml_collections.ConfigDict(dict(
          group_count=3, n_hid=32, n_blk_per_group=1, n_init=32, vocab_size=512,
          logit_laplace_eps=0.1,
          # The likelihood's smallest scale b (logit units; 0: none, as the paper).
          # Unfloored on digits, b shrinks without end on the exact-zero background
          # and the codes go unread: 12.8 dB against 16.9 dB with 0.1 (KL 6.6); at
          # 2,000 steps 0.1 / 0.3 / 0.5 give 19.1 / 20.2 / 20.7 dB.
          min_scale=0.5)),
      optim=common.optim(warmup_steps=50, grad_clip_norm=1.0),
      # 4,000 steps: 22.6 dB and class_accuracy_recon 0.962 against 20.7 dB and
      # 0.952 / 0.938 (seeds 0 / 1) at 2,000 (docs/results.md, dvae_mnist rows).
      train=common.train(num_steps=4000),
      # The paper's 6.6 weighs the KL of a code against the 192 pixel values it
      # covers (8x8x3); a code here covers 16 (4x4x1), so the same weight per pixel
      # is 6.6 x 16 / 192 = 0.55 (with the scale floor: 18.8 dB against 16.9 at 6.6).
      schedules=schedules(temperature_steps=4000, kl_weight_steps=500, kl_weight=0.55),
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
