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
official FFHQ weights load through jaxgen/models/stylegan2_pickle.py instead.
``tiny``: the same code path on MNIST-5k, small, for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
sg = config_file.module_beside(__file__, "stylegan2_mnist")


def get_config(arg=None):
  variants = common.parse_arg(arg, "stylegan2_ffhq", {"paper", "tiny"})
  c = ml_collections.ConfigDict()
  c.family = "stylegan2"
  c.seed = 0
  c.compute = common.compute()
  c.data = ml_collections.ConfigDict(dict(
      name="celeb_a_hq/1024", scale="symmetric", binarize="", dequantize=False,
      resize=(), random_flip=True, tfds_data_dir="", workers=0))
  c.model = sg.model_block(resolution=1024)
  c.stylegan2 = sg.stylegan2_block(r1_gamma=2.0, ema_kimg=10.0, ema_rampup=0.0)
  c.optim = ml_collections.ConfigDict(dict(generator=sg.adam(0.002),
                                           discriminator=sg.adam(0.002)))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=32, num_steps=781_250, log_every=100, checkpoint_every=10_000,
      sample_every=50_000, keep_checkpoints=3, num_samples=16))
  c.eval = ml_collections.ConfigDict(dict(
      split="train", batch_size=32, num_examples=1000, metrics=("fid",),
      feature_net="inception", inception_mode="tf", weights="", num_samples=50_000,
      reference_split="train", sample_batch_size=32))
  if "tiny" in variants:
    c.data = common.mnist5k_data(scale="symmetric")
    c.model.update(resolution=32, z_dim=8, w_dim=8, mapping_layers=2,
                   d_mapping_layers=2, channel_base=64, channel_max=4)
    c.stylegan2.update(r1_interval=2, pl_interval=2)
    c.train.update(batch_size=8, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    c.eval = common.mnist_classifier_eval(split="test", batch_size=8, num_examples=16)
    c.eval.update(num_samples=100, sample_batch_size=50)
  return c
