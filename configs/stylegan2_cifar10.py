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
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
sg = config_file.module_beside(__file__, "stylegan2_mnist")


def get_config(arg=None):
  variants = common.parse_arg(arg, "stylegan2_cifar10", {"paper", "tiny"})
  c = ml_collections.ConfigDict()
  c.family = "stylegan2"
  c.seed = 0
  c.compute = common.compute()
  c.data = ml_collections.ConfigDict(dict(
      name="cifar10", scale="symmetric", binarize="", dequantize=False, resize=(),
      random_flip=False, tfds_data_dir="", workers=0))
  c.model = sg.model_block(resolution=32, num_classes=10, mapping_layers=2,
                           d_architecture="orig", mbstd_group_size=32)
  c.stylegan2 = sg.stylegan2_block(
      style_mixing_prob=0.0, r1_gamma=0.01, pl_weight=0.0, ema_kimg=500.0,
      ema_rampup=0.05, augment="bgc", ada_target=0.6, ada_kimg=500.0)
  c.optim = ml_collections.ConfigDict(dict(generator=sg.adam(0.0025),
                                           discriminator=sg.adam(0.0025)))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=64, num_steps=1_562_500, log_every=100, checkpoint_every=10_000,
      sample_every=50_000, keep_checkpoints=3, num_samples=100))
  c.eval = ml_collections.ConfigDict(dict(
      split="test", batch_size=100, num_examples=1000, metrics=("fid", "is"),
      feature_net="inception", inception_mode="tf", weights="", num_samples=50_000,
      reference_split="train", sample_batch_size=500))
  if "tiny" in variants:
    c.data = common.mnist5k_data(scale="symmetric")
    c.model.update(z_dim=8, w_dim=8, d_mapping_layers=2, channel_base=64,
                   channel_max=4, mbstd_group_size=4)
    c.stylegan2.update(r1_interval=2, ada_interval=1, ada_kimg=0.1)
    c.train.update(batch_size=8, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2, num_samples=20)
    c.eval = common.mnist_classifier_eval(split="test", batch_size=8, num_examples=16)
    c.eval.update(num_samples=100, sample_batch_size=50)
    c.eval.metrics = ("fid", "is", "class_accuracy")
  return c
