r"""Pix2Pix (Isola et al. 2017) on CMP Facades, labels -> photos, as the paper.

  python -m jaxgen.main --config=configs/pix2pix_facades.py:paper --mode=summary
  python -m jaxgen.main --config=configs/pix2pix_facades.py --workdir=/tmp/pix2pix_facades

Variants (comma-separated after the colon):
  paper     (= the default) unet_256 generator (8 levels, ngf 64, BatchNorm, dropout
            0.5 in the first three decoder levels, kept on at test time) and the 70x70
            PatchGAN (ndf 64, n_layers 3) on the concatenated pair: 54,413,955
            generator and 2,768,705 discriminator parameters, as
            junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py. Vanilla GAN loss
            + 100 L1, Adam 2e-4 beta1 0.5, batch 1, 200 epochs of the 400 training
            pairs (80,000 steps): the rate constant for the first 100 epochs, then
            linear to zero; jitter 286 -> random 256 crop and mirroring, drawn jointly
            for the pair.
  tiny      seconds, on MNIST-5k edges at 32x32 with a 5-level U-Net (no facades
            needed): for tests.

Data: tensorflow-datasets does not carry the paired facades (only the unpaired
``cycle_gan/facades``); the pairs come from
http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz (train/val/test
folders of 512x256 JPEGs, photo | label map), read by the paired-folder dataset
``pix2pix/facades`` (jaxgen/data/paired_folder.py; ``config.data.folder`` is the extracted
folder; direction B -> A, labels -> photos). Until that dataset is registered in
jaxgen/data/sources.py, ``--mode=summary`` names the dataset as unknown; the counts are
checked in tests/test_pix2pix.py.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
pix2pix = config_file.module_beside(__file__, "pix2pix_base")

TRAIN_PAIRS = 400


def get_config(arg=None):
  variants = common.parse_arg(arg, "pix2pix_facades", {"tiny", "paper"})
  c = pix2pix.base()
  c.data = common.image_data(
      "pix2pix/facades", folder="", direction="BtoA", half_size=(256, 256),
      scale="symmetric", resize=(256, 256), jitter_resize=(286, 286), random_flip=True)
  c.model.update(generator="unet_256", num_downs=0, ngf=64, ndf=64)
  num_steps = 200 * TRAIN_PAIRS
  c.optim = common.translation_optim(num_steps)
  c.train.update(batch_size=1, num_steps=num_steps, log_every=400,
                 checkpoint_every=4000, sample_every=4000)
  c.eval.update(batch_size=1, num_samples=106, sample_batch_size=1)
  if "tiny" in variants:
    c.data = pix2pix.edges_data(random_flip=True)
    c.model.update(generator="unet", num_downs=5)
    pix2pix.tiny(c, batch_size=2)
    c.eval.update(batch_size=4, num_examples=8, num_samples=8, sample_batch_size=4)
  return c
