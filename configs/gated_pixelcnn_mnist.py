r"""Class-conditional Gated PixelCNN (van den Oord et al. 2016b) on grey-level MNIST-5k.

  python -m jaxgen.main --config=configs/gated_pixelcnn_mnist.py --workdir=/tmp/gated_mnist
  python -m jaxgen.main --config=configs/gated_pixelcnn_mnist.py --workdir=/tmp/gated_mnist \
      --mode=eval      # test NLL (nats per image, bits/dim), FID, IS, class accuracy
  python -m jaxgen.complete --config=configs/gated_pixelcnn_mnist.py \
      --workdir=/tmp/gated_mnist --images=a.png --labels=7 --mask=top_half --out=c.png

Vertical and horizontal stacks without the blind spot, gated tanh * sigmoid units, a
256-way softmax per pixel over the 256 grey levels, a class embedding added to every
gated layer. ``samples`` has one row per class; ``completion`` (``config.complete``:
the visible ``mask`` top_half | left_half | rows:K | pixels:P, ``num_completions``,
``num_images``) shows occluded test digits, their completions (conditioned on the
true label) and the originals; ``python -m jaxgen.complete`` does it for image files.

Variants (comma-separated after the colon):
  (default) 7x7 first layer, 6 gated layers of width 16 (3x3), an output layer of 32,
            batch 32, 2,000 Adam steps; minutes on a 2-core CPU.
  tiny      seconds: for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "gated_pixelcnn_mnist", {"tiny"})
  c = ml_collections.ConfigDict()
  c.family = "pixelcnn"
  c.seed = 0
  c.compute = common.compute()
  c.data = common.mnist5k_data(scale="unit")
  c.model = ml_collections.ConfigDict(dict(
      arch="gated", likelihood="categorical256", features=16, num_layers=6,
      first_kernel_size=7, kernel_size=3, output_features=32, first_mask="A",
      num_classes=10, num_mix=10, dropout=0.0, num_scales=3))
  c.optim = ml_collections.ConfigDict(dict(
      name="adam", learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
      schedule="cosine", warmup_steps=100, end_factor=0.05, grad_clip_norm=1.0,
      ema_decay=0.0))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=32, num_steps=2000, log_every=50, checkpoint_every=1000,
      sample_every=2000, keep_checkpoints=3, num_samples=100))
  c.complete = ml_collections.ConfigDict(dict(
      mask="top_half", num_completions=4, num_images=8))
  # 784 network evaluations per sample: 250 samples for FID / IS / class accuracy.
  c.eval = common.mnist_classifier_eval(split="test", batch_size=100, num_examples=0)
  c.eval.update(metrics=("fid", "is", "class_accuracy"), num_samples=250,
                sample_batch_size=125)
  if "tiny" in variants:
    c.model.update(features=4, num_layers=2, output_features=4, first_kernel_size=3)
    c.train.update(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2,
                   sample_every=2, num_samples=10)
    c.optim.warmup_steps = 1
    c.complete.update(num_completions=2, num_images=2)
    c.eval.update(batch_size=8, num_examples=16, num_samples=16, sample_batch_size=8)
  return c
