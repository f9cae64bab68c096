r"""StyleGAN2 config F at 1024x1024 (Karras et al. 2020; FFHQ FID 2.84), as NVlabs'
stylegan2-ada-pytorch ``training/networks.py`` builds it.

  python -m jaxgen.main --config=configs/stylegan2_ffhq.py:paper --mode=summary
  python -m jaxgen.main --config=configs/stylegan2_ffhq.py:paper --workdir=DIR

``paper`` (and the default, which is the same): 30,370,060 generator and 29,012,513
discriminator parameters: z = w = 512, mapping 8 x 512 (lr multiplier 0.01),
channel_base 32768, channel_max 512, ``skip`` generator, ``resnet`` discriminator with
minibatch std (group 4, 1 channel), conv clamp 256. Training as the reference's
``paper1024`` spec: R1 gamma 2 every 16 steps, path length weight 2 every 4 (decay
0.01, batch shrink 2), style mixing 0.9, Adam 0.002 betas (0, 0.99) with the lazy
correction, batch 32, G_ema half-life 10 kimg, no augmentation, 25,000 kimg.
FFHQ is not in tensorflow-datasets: the data is CelebA-HQ at 1024
(``python -m jaxgen.data.prepare celeb_a_hq/1024``, manual files), the same shape;
official FFHQ weights load through jaxgen/weights/stylegan2.py instead.
``tiny``: the same code path on MNIST-5k, small, for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
sg = config_file.module_beside(__file__, "stylegan2_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "stylegan2_ffhq", {"paper", "tiny"})
  c = sg.base()
  c.data = common.image_data("celeb_a_hq/1024", scale="symmetric", random_flip=True)
  c.model = sg.model_block(resolution=1024)
  c.stylegan2 = sg.stylegan2_block(r1_gamma=2.0)
  c.optim = sg.optim(0.002)
  c.train.update(num_steps=781_250, log_every=100, checkpoint_every=10_000,
                 sample_every=50_000, num_samples=16)
  c.eval = common.inception_eval(split="train", batch_size=32, metrics=("fid",),
                                 sample_batch_size=32)
  if "tiny" in variants:
    sg.tiny(c)
    c.stylegan2.update(r1_interval=2, pl_interval=2)
  return c
