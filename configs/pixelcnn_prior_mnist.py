r"""The VQ-VAE paper's prior: a class-conditional Gated PixelCNN over the 7x7 code grid
of a frozen VQ-VAE (configs/vqvae_mnist.py) on MNIST-5k; samples decode through the
stage's decoder.

  python -m jaxgen.main --config=configs/vqvae_mnist.py --workdir=/tmp/vqvae_mnist
  python -m jaxgen.main --config=configs/pixelcnn_prior_mnist.py --workdir=/tmp/vq_prior \
      --config.stages.autoencoder=/tmp/vqvae_mnist
  python -m jaxgen.main --config=configs/pixelcnn_prior_mnist.py --workdir=/tmp/vq_prior \
      --config.stages.autoencoder=/tmp/vqvae_mnist --mode=eval   # NLL of the codes,
                          # FID, IS, class coverage, precision / recall and class
                          # accuracy of samples
  python -m jaxgen.families.pixelcnn.complete --config=configs/pixelcnn_prior_mnist.py --workdir=/tmp/vq_prior \
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
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
pixelcnn = config_file.module_beside(__file__, "pixelcnn_base")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"autoencoder": "vqvae_mnist"}


def get_config(arg=None):
  variants = common.parse_arg(arg, "pixelcnn_prior_mnist", {"tiny"})
  c = pixelcnn.base()
  common.over_stages(c, "pixelcnn_prior", STAGE_CONFIGS)
  c.model.update(arch="gated", likelihood="categorical", output_features=64,
                 num_classes=10)
  c.train.update(num_steps=1000, checkpoint_every=500, sample_every=1000,
                 num_samples=100)
  c.eval = common.mnist_classifier_eval(metrics=(*common.DIGIT_METRICS, "class_accuracy"))
  if "tiny" in variants:
    c.model.update(features=4, num_layers=2, output_features=4, first_kernel_size=3)
    pixelcnn.tiny(c, num_samples=10)
  return c
