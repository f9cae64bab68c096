r"""The VQ-VAE paper's prior: a class-conditional Gated PixelCNN over the 7x7 code grid
of a frozen VQ-VAE (configs/vqvae_mnist.py) on MNIST-5k; samples decode through the
stage's decoder.

  python -m jaxgen.main --config=configs/vqvae_mnist.py --workdir=/tmp/vqvae_mnist
  python -m jaxgen.main --config=configs/vqvae_prior_mnist.py --workdir=/tmp/vq_prior \
      --config.stages.autoencoder=/tmp/vqvae_mnist
  python -m jaxgen.main --config=configs/vqvae_prior_mnist.py --workdir=/tmp/vq_prior \
      --config.stages.autoencoder=/tmp/vqvae_mnist --mode=eval   # NLL of the codes,
                                                # FID, IS and class accuracy of samples
  python -m jaxgen.complete --config=configs/vqvae_prior_mnist.py --workdir=/tmp/vq_prior \
      --config.stages.autoencoder=/tmp/vqvae_mnist --images=a.png --labels=3 --out=c.png

The codes enter the network one-hot; a K-way softmax per code (K = the stage's
num_codes). The stage must be a finished VQ-VAE run (integer codes): a VAE run, or a
missing stage, is an error. ``completion`` (``config.complete``) completes the code
grid below the visible rows (``mask`` top_half of 7 rows: the first 3) and decodes
it; its occluded inputs show the image with the matching pixels grey.

Variants (comma-separated after the colon):
  (default) 7x7 first layer, 5 gated layers of width 32 over the stage's 7x7 x K=128
            codes, 10 classes, batch 32, 1,000 Adam steps; minutes on a 2-core CPU
            after the VQ-VAE default.
  tiny      seconds: for tests, over a configs/vqvae_mnist.py:tiny stage.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"autoencoder": "vqvae_mnist"}


def get_config(arg=None):
  variants = common.parse_arg(arg, "vqvae_prior_mnist", {"tiny"})
  c = ml_collections.ConfigDict()
  c.family = "pixelcnn_prior"
  c.seed = 0
  c.compute = common.compute()
  c.stages = ml_collections.ConfigDict(dict(autoencoder=""))
  # The images as the VQ-VAE stage saw them (configs/vqvae_mnist.py's data block).
  c.data = common.mnist5k_data(scale="unit")
  c.model = ml_collections.ConfigDict(dict(
      arch="gated", likelihood="categorical", features=32, num_layers=5,
      first_kernel_size=7, kernel_size=3, output_features=64, first_mask="A",
      num_classes=10, num_mix=10, dropout=0.0, num_scales=3))
  c.optim = ml_collections.ConfigDict(dict(
      name="adam", learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
      schedule="cosine", warmup_steps=100, end_factor=0.05, grad_clip_norm=1.0,
      ema_decay=0.0))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=32, num_steps=1000, log_every=50, checkpoint_every=500,
      sample_every=1000, keep_checkpoints=3, num_samples=100))
  c.complete = ml_collections.ConfigDict(dict(
      mask="top_half", num_completions=4, num_images=8))
  c.eval = common.mnist_classifier_eval(split="test", batch_size=100, num_examples=0)
  c.eval.metrics = ("fid", "is", "class_accuracy")
  if "tiny" in variants:
    c.model.update(features=4, num_layers=2, output_features=4, first_kernel_size=3)
    c.train.update(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2,
                   sample_every=2, num_samples=10)
    c.optim.warmup_steps = 1
    c.complete.update(num_completions=2, num_images=2)
    c.eval.update(batch_size=8, num_examples=16, num_samples=16, sample_batch_size=8)
  return c
