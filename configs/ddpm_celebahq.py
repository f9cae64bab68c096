r"""DDPM on CelebA-HQ 256x256 as Ho et al. 2020 configured it (113,673,219 parameters).

  python -m jaxgen.data.prepare celeb_a_hq/256   # needs the manual CelebA-HQ files
  python -m jaxgen.main --config=configs/ddpm_celebahq.py:paper --workdir=DIR

``paper`` (and the default): ch 128, mult (1,1,2,2,4,4), 2 res blocks, attention at
16x16, no dropout, T=1000 linear betas, Adam 2e-5, batch 64, EMA 0.9999, random flips.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "ddpm_celebahq", {"paper"})
  c = config_file.sibling(__file__, "ddpm_cifar10", "paper")
  c.data.name = "celeb_a_hq/256"
  c.model.update(ch_mult=(1, 1, 2, 2, 4, 4), dropout=0.0)
  c.optim.update(learning_rate=2e-5)
  c.train.update(batch_size=64, num_steps=500_000)
  c.eval.update(metrics=("fid",), sample_batch_size=64)  # IS means little for faces
  return c
