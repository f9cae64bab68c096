r"""PixelCNN++ (Salimans et al. 2017): openai/pixel-cnn's CIFAR-10 model (2.92 bits/dim),
the network of configs/pixelcnnpp_mnist.py (described there) at the paper's size.

  python -m jaxgen.main --config=configs/pixelcnnpp_cifar10.py:paper --mode=summary
  python -m jaxgen.data.prepare cifar10     # once, where the internet is reachable
  python -m jaxgen.main --config=configs/pixelcnnpp_cifar10.py:paper --workdir=DIR

Variants (comma-separated after the colon):
  paper     (= the default) the reference model: 160 filters, 5 blocks per
            resolution, 10 logistics, dropout 0.5, 53,659,080 parameters; Adam 1e-3
            decayed by 0.999995 per step (here a linear decay to the same final
            factor), batch 16 x 8 GPUs = 128, Polyak averaging 0.9995, CIFAR-10
            without flips. (Data-dependent initialisation is not reproduced: see
            jaxgen/families/pixelcnn/pixelcnnpp.py.)
  tiny      seconds: the same code path at a tiny size, on CIFAR-10, for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
pixelcnn = config_file.module_beside(__file__, "pixelcnn_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "pixelcnnpp_cifar10", {"paper", "tiny"})
  c = config_file.sibling(__file__, "pixelcnnpp_mnist")
  c.data = common.image_data("cifar10")
  c.model.update(features=160, num_layers=5, num_mix=10, dropout=0.5)
  # lr * 0.999995 ** step, as the reference's lr_decay
  c.optim.update(b1=0.95, b2=0.9995, schedule="linear", warmup_steps=0,
                 end_factor=0.999995 ** 500_000, grad_clip_norm=0.0, ema_decay=0.9995)
  c.train.update(batch_size=128, num_steps=500_000, log_every=100,
                 checkpoint_every=10_000, sample_every=50_000, num_samples=16)
  c.eval = common.inception_eval(num_examples=0, num_samples=1000,
                                 sample_batch_size=100)
  if "tiny" in variants:
    c.model.update(features=4, num_layers=1, num_mix=2, dropout=0.1)
    pixelcnn.tiny(c)
  return c
