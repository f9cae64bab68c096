r"""PixelCNN++ (Salimans et al. 2017) at a small size on grey-level MNIST-5k, which
trains here (configs/pixelcnnpp_cifar10.py: openai/pixel-cnn's CIFAR-10 model).

  python -m jaxgen.main --config=configs/pixelcnnpp_mnist.py --workdir=/tmp/pxpp_mnist
  python -m jaxgen.families.pixelcnn.complete --config=configs/pixelcnnpp_mnist.py \
      --workdir=/tmp/pxpp_mnist --images=a.png --mask=top_half --out=c.png

The network: two shifted streams (rows above; above and left), three resolutions of
``num_layers`` gated resnet blocks (concat_elu, dropout) with short-cut connections
from the up pass to the down pass, weight normalisation, and a discretised mixture of
``num_mix`` logistics per pixel with the RGB dependence inside the pixel. The
``completion`` picture of --mode=sample is set by ``config.complete`` (visible
``mask``: top_half | left_half | rows:K | pixels:P; ``num_completions``;
``num_images``); ``python -m jaxgen.families.pixelcnn.complete`` takes image files.

Variants (comma-separated after the colon):
  (default) MNIST-5k grey levels: 16 filters, 1 block per resolution (28, 14, 7),
            5 logistics, dropout 0.1, batch 16, 2,000 steps; minutes on a 2-core CPU.
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
pixelcnn = config_file.module_beside(__file__, "pixelcnn_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "pixelcnnpp_mnist", {"tiny"})
  c = pixelcnn.base()
  c.data.binarize = ""
  c.model.update(arch="pixelcnnpp", likelihood="logistic_mixture", features=16,
                 num_layers=1, output_features=0, num_mix=5, dropout=0.1)
  c.train.batch_size = 16
  if "tiny" in variants:
    c.model.update(features=4, num_layers=1, num_mix=2, dropout=0.1)
    pixelcnn.tiny(c)
  return c
