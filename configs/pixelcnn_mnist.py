r"""PixelCNN (van den Oord et al. 2016a) on binarised MNIST-5k (4,500 train / 500 test).

  python -m jaxgen.main --config=configs/pixelcnn_mnist.py --workdir=/tmp/pixelcnn_mnist
  python -m jaxgen.main --config=configs/pixelcnn_mnist.py --workdir=/tmp/pixelcnn_mnist \
      --mode=eval      # test NLL in nats per image (paper, full MNIST: 81.30), FID, IS
  python -m jaxgen.main --config=configs/pixelcnn_mnist.py --workdir=/tmp/pixelcnn_mnist \
      --mode=sample    # samples/step_N.png and samples/completion_step_N.png
  python -m jaxgen.complete --config=configs/pixelcnn_mnist.py --workdir=/tmp/pixelcnn_mnist \
      --images=a.png,b.png --mask=top_half --out=/tmp/completion.png

Completion: ``config.complete`` sets the picture of --mode=sample (``mask``: top_half,
left_half, rows:K or pixels:P, the VISIBLE part; ``num_completions`` per image;
``num_images`` test images); ``python -m jaxgen.complete`` takes image files instead
(any size; converted to the model's channels and resized to its resolution).

Variants (comma-separated after the colon):
  (default) a 7x7 mask-A convolution, 5 residual blocks of width 2h = 32 (3x3 mask B),
            two 1x1 layers of 32, a Bernoulli per pixel on dynamically binarised
            digits; batch 32, 2,000 Adam steps; minutes on a 2-core CPU.
  tiny      seconds: for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "pixelcnn_mnist", {"tiny"})
  c = ml_collections.ConfigDict()
  c.family = "pixelcnn"
  c.seed = 0
  c.compute = common.compute()
  c.data = common.mnist5k_data(scale="unit", binarize="dynamic")
  c.model = ml_collections.ConfigDict(dict(
      arch="pixelcnn", likelihood="bernoulli", features=32, num_layers=5,
      first_kernel_size=7, kernel_size=3, output_features=32, first_mask="A",
      num_classes=0, num_mix=10, dropout=0.0, num_scales=3))
  c.optim = ml_collections.ConfigDict(dict(
      name="adam", learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
      schedule="cosine", warmup_steps=100, end_factor=0.05, grad_clip_norm=1.0,
      ema_decay=0.0))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=32, num_steps=2000, log_every=50, checkpoint_every=1000,
      sample_every=2000, keep_checkpoints=3, num_samples=64))
  c.complete = ml_collections.ConfigDict(dict(
      mask="top_half", num_completions=4, num_images=8))
  # Sampling a 28x28 image takes 784 network evaluations: 256 samples for FID / IS.
  c.eval = common.mnist_classifier_eval(split="test", batch_size=100, num_examples=0)
  c.eval.update(num_samples=256, sample_batch_size=128)
  if "tiny" in variants:
    c.model.update(features=4, num_layers=1, output_features=4, first_kernel_size=3)
    c.train.update(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    c.optim.warmup_steps = 1
    c.complete.update(num_completions=2, num_images=2)
    c.eval.update(batch_size=8, num_examples=16, num_samples=16, sample_batch_size=8)
  return c
