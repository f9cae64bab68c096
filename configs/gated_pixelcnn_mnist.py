r"""Class-conditional Gated PixelCNN (van den Oord et al. 2016b) on grey-level MNIST-5k.

  python -m jaxgen.main --config=configs/gated_pixelcnn_mnist.py --workdir=/tmp/gated_mnist
  python -m jaxgen.main --config=configs/gated_pixelcnn_mnist.py --workdir=/tmp/gated_mnist \
      --mode=eval      # test NLL (nats per image, bits/dim), FID, IS, class coverage,
                       # precision / recall, class accuracy
  python -m jaxgen.families.pixelcnn.complete --config=configs/gated_pixelcnn_mnist.py \
      --workdir=/tmp/gated_mnist --images=a.png --labels=7 --mask=top_half --out=c.png

Vertical and horizontal stacks without the blind spot, gated tanh * sigmoid units, a
256-way softmax per pixel over the 256 grey levels, a class embedding added to every
gated layer. ``samples`` has one row per class; ``completion`` (``config.complete``:
the visible ``mask`` top_half | left_half | rows:K | pixels:P, ``num_completions``,
``num_images``) shows occluded test digits, their completions (conditioned on the
true label) and the originals; ``python -m jaxgen.families.pixelcnn.complete`` does it for image files.

Variants (comma-separated after the colon):
  (default) 7x7 first layer, 6 gated layers of width 16 (3x3), an output layer of 32,
            batch 32, 2,000 Adam steps; minutes on a 2-core CPU.
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
pixelcnn = config_file.module_beside(__file__, "pixelcnn_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "gated_pixelcnn_mnist", {"tiny"})
  c = pixelcnn.base()
  c.data.binarize = ""
  c.model.update(arch="gated", likelihood="categorical256", features=16, num_layers=6,
                 num_classes=10)
  c.train.num_samples = 100
  # 784 network evaluations per sample: 250 samples for the sample metrics.
  c.eval.update(metrics=(*common.DIGIT_METRICS, "class_accuracy"), num_samples=250,
                sample_batch_size=125)
  if "tiny" in variants:
    c.model.update(features=4, num_layers=2, output_features=4, first_kernel_size=3)
    pixelcnn.tiny(c, num_samples=10)
  return c
