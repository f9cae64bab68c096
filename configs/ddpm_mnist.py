r"""DDPM (Ho et al. 2020) on MNIST-5k, with a small U-Net.

  python -m jaxgen.main --config=configs/ddpm_mnist.py --workdir=/tmp/ddpm_mnist

Variants (comma-separated after the colon):
  (default) unconditional; T = 1000 linear betas, epsilon prediction, EMA 0.999;
            a 16-channel U-Net, batch 32, 7,000 steps: recognisable digits, 2.07
            bits/dim on 100 test digits, 29 min on a 2-core CPU (incl. evaluation).
  cond      class-conditional with label dropout 0.1 and classifier-free guidance 2.
  tiny      seconds: for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "ddpm_mnist", {"tiny", "cond"})
  c = ml_collections.ConfigDict()
  c.family = "ddpm"
  c.seed = 0
  c.compute = common.compute()
  c.data = common.mnist5k_data(scale="symmetric")
  c.diffusion = ml_collections.ConfigDict(dict(
      schedule="linear", num_steps=1000, parameterization="eps",
      variance="fixedlarge"))
  c.model = ml_collections.ConfigDict(dict(
      ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(7,), dropout=0.1,
      num_groups=8, num_classes=0, label_dropout=0.1, time_embedding="sinusoidal",
      scale_shift=False))
  c.optim = ml_collections.ConfigDict(dict(
      name="adam", learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
      schedule="cosine", warmup_steps=200, end_factor=0.05, grad_clip_norm=1.0,
      ema_decay=0.999))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=32, num_steps=7000, log_every=50, checkpoint_every=1000,
      sample_every=2000, keep_checkpoints=3, num_samples=64))
  c.sample = ml_collections.ConfigDict(dict(
      sampler="ddim", num_steps=50, eta=0.0, guidance_scale=0.0))
  c.eval = common.mnist_classifier_eval(split="test", batch_size=50,
                                       num_examples=100)
  if "cond" in variants:
    c.model.num_classes = 10
    c.sample.guidance_scale = 2.0
    c.eval.metrics = ("fid", "is", "class_accuracy")
    c.train.num_samples = 100
  if "tiny" in variants:
    c.diffusion.num_steps = 100
    c.model.update(ch=8, ch_mult=(1, 2), attn_resolutions=(14,), num_groups=4)
    c.train.update(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2,
                   sample_every=2, num_samples=10 if c.model.num_classes else 4)
    c.optim.warmup_steps = 1
    c.sample.num_steps = 5
    c.eval.update(batch_size=4, num_examples=4, num_samples=100, sample_batch_size=50)
  return c
