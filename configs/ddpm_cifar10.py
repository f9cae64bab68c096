r"""DDPM on CIFAR-10 as Ho et al. 2020 trained it (FID 3.17, IS 9.46 at 800k steps).

  python -m jaxgen.data.prepare cifar10     # once, where the internet is reachable
  python -m jaxgen.main --config=configs/ddpm_cifar10.py:paper --workdir=DIR

Variants: ``paper`` (and the default, which is the same): the 35,746,307-parameter
U-Net (ch 128, mult (1,2,2,2), 2 res blocks, attention at 16x16, dropout 0.1), T=1000
linear betas, Adam 2e-4 with 5,000 warm-up steps, gradient clipping at 1, batch 128,
EMA 0.9999, random flips, 800k steps. ``tiny``: the same code path, small, for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
ddpm = config_file.module_beside(__file__, "ddpm_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "ddpm_cifar10", {"paper", "tiny"})
  c = ddpm.base()
  # 4 grain worker processes keep up with an accelerator's training rate
  # (docs/results.md, "Input pipeline").
  c.data = common.image_data("cifar10", scale="symmetric", random_flip=True, workers=4)
  c.model.update(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                 num_groups=32)
  c.optim.update(learning_rate=2e-4, schedule="constant", warmup_steps=5000,
                 end_factor=1.0, ema_decay=0.9999)
  c.train.update(batch_size=128, num_steps=800_000, log_every=100,
                 checkpoint_every=10_000, sample_every=50_000)
  c.sample.update(sampler="ancestral", num_steps=1000)
  c.eval = common.inception_eval()  # the paper's protocol
  if "tiny" in variants:
    c.data.update(name="mnist5k", workers=0, resize=(32, 32))
    c.model.update(ch=8, ch_mult=(1, 2), num_groups=4)
    ddpm.tiny(c, num_steps=2, log_every=1)
    c.eval.update(batch_size=4, num_examples=4, metrics=())
  return c
