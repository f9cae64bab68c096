r"""DDPM (Ho et al. 2020) on MNIST-5k, with a small U-Net.

  python -m jaxgen.main --config=configs/ddpm_mnist.py --workdir=/tmp/ddpm_mnist

Variants (comma-separated after the colon):
  (default) unconditional; T = 1000 linear betas, epsilon prediction, EMA 0.999;
            a 16-channel U-Net, batch 32, 7,000 steps (docs/results.md, "Training
            runs", ddpm_mnist).
  cond      class-conditional with label dropout 0.1 and classifier-free guidance
            scale 3 (Ho & Salimans' w = 2).
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
ddpm = config_file.module_beside(__file__, "ddpm_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "ddpm_mnist", {"tiny", "cond"})
  c = ddpm.base()
  if "cond" in variants:
    c.model.num_classes = 10
    c.sample.guidance_scale = 3.0
    c.eval.metrics = ("fid", "is", "class_accuracy")
    c.train.num_samples = 100
  if "tiny" in variants:
    c.model.update(ch=8, ch_mult=(1, 2), attn_resolutions=(14,), num_groups=4)
    ddpm.tiny(c, num_samples=10 if c.model.num_classes else 4)
    c.eval.update(batch_size=4, num_examples=4, num_samples=100, sample_batch_size=50)
  return c
