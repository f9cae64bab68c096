r"""StyleGAN2-ADA on conditional CIFAR-10, as the ADA paper trains it (FID 2.42):
NVlabs' stylegan2-ada-pytorch ``train.py --cfg=cifar --cond=1 --aug=ada``.

  python -m jaxgen.data.prepare cifar10     # once, where the internet is reachable
  python -m jaxgen.main --config=configs/stylegan2_cifar10.py:paper --workdir=DIR

``paper`` (and the default, which is the same): 20,215,315 generator and 23,089,664
discriminator parameters. z = w = 512, mapping 2 layers (lr multiplier 0.01),
channel_base 32768 (512 channels at 4-32), the ``skip`` generator, the ``orig``
discriminator (no residual connections) with minibatch std over groups of 32 and the
projection label head (cmap 512 through an 8-layer label mapping), conv clamp 256;
R1 gamma 0.01 every 16 steps, no path-length regularisation, no style mixing, Adam
0.0025 betas (0, 0.99), batch 64, G_ema half-life 500 kimg with ramp-up 0.05, ADA
``bgc`` towards r_t = 0.6 (adjusted every 4 steps, ada_kimg 500); 100,000 kimg =
1,562,500 steps. Metrics: FID and IS from 50,000 samples in the Inception features.
``tiny``: the same code path on MNIST-5k digits, small, for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
sg = config_file.module_beside(__file__, "stylegan2_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "stylegan2_cifar10", {"paper", "tiny"})
  c = sg.base()
  c.data = common.image_data("cifar10", scale="symmetric")
  c.model = sg.model_block(num_classes=10, mapping_layers=2, d_architecture="orig",
                           mbstd_group_size=32)
  c.stylegan2.ada_kimg = 500.0
  c.train.update(batch_size=64, num_steps=1_562_500, log_every=100,
                 checkpoint_every=10_000, sample_every=50_000, num_samples=100)
  c.eval = common.inception_eval()
  if "tiny" in variants:
    sg.tiny(c, num_samples=20)
    c.model.mbstd_group_size = 4
    c.stylegan2.update(r1_interval=2, ada_interval=1, ada_kimg=0.1)
    c.eval.metrics = ("fid", "is", "class_accuracy")
  return c
