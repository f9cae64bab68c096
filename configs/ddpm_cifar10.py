r"""DDPM on CIFAR-10 as Ho et al. 2020 trained it (FID 3.17, IS 9.46 at 800k steps).

  python -m jaxgen.data.prepare cifar10     # once, where the internet is reachable
  python -m jaxgen.main --config=configs/ddpm_cifar10.py:paper --workdir=DIR

Variants: ``paper`` (and the default, which is the same): the 35,746,307-parameter
U-Net (ch 128, mult (1,2,2,2), 2 res blocks, attention at 16x16, dropout 0.1), T=1000
linear betas, Adam 2e-4 with 5,000 warm-up steps, gradient clipping at 1, batch 128,
EMA 0.9999, random flips, 800k steps. ``tiny``: the same code path, small, for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "ddpm_cifar10", {"paper", "tiny"})
  c = ml_collections.ConfigDict()
  c.family = "ddpm"
  c.seed = 0
  c.compute = common.compute()
  c.data = ml_collections.ConfigDict(dict(
      name="cifar10", scale="symmetric", binarize="", dequantize=False, resize=(),
      # 4 grain worker processes: one makes about 4,000 img/s here (README
      # "loader on grain workers"), about the H200's training rate of 3,800 img/s.
      random_flip=True, tfds_data_dir="", workers=4))
  c.diffusion = ml_collections.ConfigDict(dict(
      schedule="linear", num_steps=1000, parameterization="eps",
      variance="fixedlarge"))
  c.model = ml_collections.ConfigDict(dict(
      ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
      dropout=0.1, num_groups=32, num_classes=0, label_dropout=0.1,
      time_embedding="sinusoidal", scale_shift=False))
  c.optim = ml_collections.ConfigDict(dict(
      name="adam", learning_rate=2e-4, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
      schedule="constant", warmup_steps=5000, end_factor=1.0, grad_clip_norm=1.0,
      ema_decay=0.9999))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=128, num_steps=800_000, log_every=100, checkpoint_every=10_000,
      sample_every=50_000, keep_checkpoints=3, num_samples=64))
  c.sample = ml_collections.ConfigDict(dict(
      sampler="ancestral", num_steps=1000, eta=0.0, guidance_scale=0.0))
  c.eval = ml_collections.ConfigDict(dict(
      split="test", batch_size=100, num_examples=1000,
      # the paper's protocol: 50,000 samples against the training set, TF-comparable
      # Inception features (pytorch-fid's weights; see README "Metrics")
      metrics=("fid", "is"), feature_net="inception", inception_mode="tf",
      weights="", num_samples=50_000, reference_split="train", sample_batch_size=500))
  if "tiny" in variants:
    c.data.name = "mnist5k"
    c.data.workers = 0
    c.data.resize = (32, 32)
    c.diffusion.num_steps = 100
    c.model.update(ch=8, ch_mult=(1, 2), attn_resolutions=(16,), num_groups=4)
    c.train.update(batch_size=8, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    c.optim.warmup_steps = 1
    c.sample.update(sampler="ddim", num_steps=5)
    c.eval.update(batch_size=4, num_examples=4, metrics=())
  return c
