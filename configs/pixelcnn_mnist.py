r"""PixelCNN (van den Oord et al. 2016a) on binarised MNIST-5k (4,500 train / 500 test).

  python -m jaxgen.main --config=configs/pixelcnn_mnist.py --workdir=/tmp/pixelcnn_mnist
  python -m jaxgen.main --config=configs/pixelcnn_mnist.py --workdir=/tmp/pixelcnn_mnist \
      --mode=eval      # test NLL in nats per image (paper, full MNIST: 81.30), FID, IS,
                       # class coverage, precision / recall
  python -m jaxgen.main --config=configs/pixelcnn_mnist.py --workdir=/tmp/pixelcnn_mnist \
      --mode=sample    # samples/step_N.png and samples/completion_step_N.png
  python -m jaxgen.families.pixelcnn.complete --config=configs/pixelcnn_mnist.py --workdir=/tmp/pixelcnn_mnist \
      --images=a.png,b.png --mask=top_half --out=/tmp/completion.png

Completion: ``config.complete`` sets the picture of --mode=sample (``mask``: top_half,
left_half, rows:K or pixels:P, the VISIBLE part; ``num_completions`` per image;
``num_images`` test images); ``python -m jaxgen.families.pixelcnn.complete`` takes image files instead
(any size; converted to the model's channels and resized to its resolution).

Variants (comma-separated after the colon):
  (default) a 7x7 mask-A convolution, 5 residual blocks of width 2h = 32 (3x3 mask B),
            two 1x1 layers of 32, a Bernoulli per pixel on dynamically binarised
            digits; batch 32, 2,000 Adam steps; minutes on a 2-core CPU.
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
pixelcnn = config_file.module_beside(__file__, "pixelcnn_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "pixelcnn_mnist", {"tiny"})
  c = pixelcnn.base()
  if "tiny" in variants:
    c.model.update(features=4, num_layers=1, output_features=4, first_kernel_size=3)
    pixelcnn.tiny(c)
  return c
