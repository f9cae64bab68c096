r"""PixelCNN++ (Salimans et al. 2017): openai/pixel-cnn's CIFAR-10 model (2.92 bits/dim),
and a small model on grey-level MNIST-5k that trains here.

  python -m jaxgen.main --config=configs/pixelcnnpp_cifar10.py:paper --mode=summary
  python -m jaxgen.data.prepare cifar10     # once, where the internet is reachable
  python -m jaxgen.main --config=configs/pixelcnnpp_cifar10.py:paper --workdir=DIR
  python -m jaxgen.main --config=configs/pixelcnnpp_cifar10.py --workdir=/tmp/pxpp_mnist
  python -m jaxgen.complete --config=configs/pixelcnnpp_cifar10.py --workdir=/tmp/pxpp_mnist \
      --images=a.png --mask=top_half --out=c.png

The network: two shifted streams (rows above; above and left), three resolutions of
``num_layers`` gated resnet blocks (concat_elu, dropout) with short-cut connections
from the up pass to the down pass, weight normalisation, and a discretised mixture of
``num_mix`` logistics per pixel with the RGB dependence inside the pixel. The
``completion`` picture of --mode=sample is set by ``config.complete`` (visible
``mask``: top_half | left_half | rows:K | pixels:P; ``num_completions``;
``num_images``); ``python -m jaxgen.complete`` takes image files.

Variants (comma-separated after the colon):
  paper     the reference model: 160 filters, 5 blocks per resolution, 10 logistics,
            dropout 0.5, 53,659,080 parameters; Adam 1e-3 decayed by 0.999995 per step
            (here a linear decay to the same final factor), batch 16 x 8 GPUs = 128, Polyak averaging 0.9995,
            CIFAR-10 without flips. (Data-dependent initialisation is not
            reproduced: see jaxgen/models/pixelcnnpp.py.)
  (default) MNIST-5k grey levels: 16 filters, 1 block per resolution (28, 14, 7),
            5 logistics, dropout 0.1, batch 16, 2,000 steps; minutes on a 2-core CPU.
  tiny      seconds: for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "pixelcnnpp_cifar10", {"paper", "tiny"})
  c = ml_collections.ConfigDict()
  c.family = "pixelcnn"
  c.seed = 0
  c.compute = common.compute()
  c.model = ml_collections.ConfigDict(dict(
      arch="pixelcnnpp", likelihood="logistic_mixture", features=160, num_layers=5,
      num_mix=10, dropout=0.5, num_scales=3, num_classes=0,
      first_kernel_size=7, kernel_size=3, output_features=0, first_mask="A"))
  c.optim = ml_collections.ConfigDict(dict(
      name="adam", learning_rate=1e-3, b1=0.95, b2=0.9995, eps=1e-8, weight_decay=0.0,
      schedule="constant", warmup_steps=0, end_factor=1.0, grad_clip_norm=0.0,
      ema_decay=0.9995))
  c.complete = ml_collections.ConfigDict(dict(
      mask="top_half", num_completions=4, num_images=8))
  if "paper" in variants:
    c.data = ml_collections.ConfigDict(dict(
        name="cifar10", scale="unit", binarize="", dequantize=False, resize=(),
        random_flip=False, tfds_data_dir="", workers=0))
    # lr * 0.999995 ** step, as the reference's lr_decay
    c.optim.update(schedule="linear", end_factor=0.999995 ** 500_000)
    c.train = ml_collections.ConfigDict(dict(
        batch_size=128, num_steps=500_000, log_every=100, checkpoint_every=10_000,
        sample_every=50_000, keep_checkpoints=3, num_samples=16))
    c.eval = ml_collections.ConfigDict(dict(
        split="test", batch_size=100, num_examples=0, metrics=("fid", "is"),
        feature_net="inception", inception_mode="tf", weights="", num_samples=1000,
        reference_split="train", sample_batch_size=100))
  else:
    c.data = common.mnist5k_data(scale="unit")
    c.model.update(features=16, num_layers=1, num_mix=5, dropout=0.1)
    c.optim.update(b1=0.9, b2=0.999, schedule="cosine", warmup_steps=100,
                   end_factor=0.05, grad_clip_norm=1.0, ema_decay=0.0)
    c.train = ml_collections.ConfigDict(dict(
        batch_size=16, num_steps=2000, log_every=50, checkpoint_every=1000,
        sample_every=2000, keep_checkpoints=3, num_samples=64))
    c.eval = common.mnist_classifier_eval(split="test", batch_size=100, num_examples=0)
    c.eval.update(num_samples=256, sample_batch_size=128)
  if "tiny" in variants:
    c.model.update(features=4, num_layers=1, num_mix=2, dropout=0.1)
    c.train.update(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    c.optim.warmup_steps = 1
    c.complete.update(num_completions=2, num_images=2)
    c.eval.update(batch_size=8, num_examples=16, num_samples=16, sample_batch_size=8)
  return c
