r"""StyleGAN2 (Karras et al. 2020) with ADA on MNIST-5k, padded from 28x28 to 32x32.

  python -m jaxgen.main --config=configs/stylegan2_mnist.py --workdir=/tmp/stylegan2_mnist

The networks, losses and schedule of NVlabs' stylegan2-ada-pytorch at a small size,
on the reference's recipe for 32x32 images (its train.py --cfg=cifar): a 2-layer
mapping of 128 (lr multiplier 0.01, w_avg decay 0.995), synthesis 4 -> 32 in the
``skip`` architecture with 32 channels at every resolution, the ``orig``
discriminator with minibatch std (group 4), conv clamp 256; non-saturating loss, lazy
R1 (gamma 0.01 every 16 steps), no path-length regularisation and no style mixing
(as the reference's cifar recipe), Adam 0.0025 with betas (0, 0.99) and the
lazy-regularisation correction, G_ema with half-life 500 kimg ramped up to 0.05 of the
images seen, ADA ``bgc`` targeting r_t = 0.6 (ada_kimg 100: the reference's 500
adapts too slowly for a run this short). Batch 32, 3,000 steps (96k images). At this size and length the
generator draws a few digit shapes with little variety, and so does NVlabs' own
training loop at the same settings on the same data (experiments/stylegan2_nvlabs_loop.py;
docs/results.md, "StyleGAN2 collapse study").

Variants (comma-separated after the colon):
  (default) as above.
  auto      the reference's --cfg=auto at 32x32 on one GPU: train.py's
            cfg_specs['auto'] filled in as it fills it for res 32 and 1 GPU. Batch
            max(min(min(4096 // 32, 32), 64), 1) = 32 (this config's), minibatch-std
            group min(32, 4) = 4, fmaps 0.5 (channel_base 16384, channel_max 512:
            512 channels at every resolution), z = w = 512, a 2-layer mapping, lr
            0.0025, R1 gamma 0.0002 * 32^2 / 32 = 0.0064 every 16 steps, G_ema
            half-life 32 * 10 / 32 = 10 kimg ramped up to 0.05 of the images seen;
            the loss's and networks' defaults: path length (weight 2, every 4),
            style mixing 0.9, the ``resnet`` discriminator; ADA ``bgc`` to 0.6 at
            the reference's ada_kimg 500. In float32 (the reference runs its four
            highest resolutions in float16). 3,000 steps, as the default. Each 3x3
            convolution does (512 / 32)^2 = 256 times the default's work: a GPU's
            recipe.
  noada     without augmentation.
  tiny      seconds, for tests: the reference's default regularisers (R1 gamma 0.1,
            path length and style mixing, every 2 steps) on a 4-channel network.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
sg = config_file.module_beside(__file__, "stylegan2_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "stylegan2_mnist", {"tiny", "noada", "auto"})
  c = sg.base()
  if "auto" in variants:  # train.py's cfg_specs['auto'] for res = 32 on gpus = 1
    res, gpus = 32, 1
    mb = max(min(gpus * min(4096 // res, 32), 64), gpus)
    c.model = sg.model_block(resolution=res, mapping_layers=2,
                             channel_base=int(0.5 * 32768), channel_max=512,
                             mbstd_group_size=min(mb // gpus, 4))
    c.stylegan2 = sg.stylegan2_block(r1_gamma=0.0002 * res ** 2 / mb,
                                     ema_kimg=mb * 10 / 32, ema_rampup=0.05,
                                     augment="bgc")
    c.optim = sg.optim(0.0025)
    c.train.batch_size = mb
  if "noada" in variants:
    c.stylegan2.augment = ""
  if "tiny" in variants:  # the reference's default regularisers, so tests run them
    sg.tiny(c)
    c.model.d_architecture = "resnet"
    c.stylegan2.update(style_mixing_prob=0.9, pl_weight=2.0, r1_gamma=0.1,
                       ema_kimg=0.5, r1_interval=2, pl_interval=2, ada_interval=1,
                       ada_kimg=0.1)
  return c
