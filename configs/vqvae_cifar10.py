r"""VQ-VAE on CIFAR-10: sonnet's example (examples/vqvae_example.ipynb).

  python -m jaxgen.main --config=configs/vqvae_cifar10.py:paper --mode=summary
  python -m jaxgen.main --config=configs/vqvae_cifar10.py:paper --workdir=/tmp/vqvae_cifar10

Needs CIFAR-10 through tensorflow-datasets (prepared where the machine has internet).

Variants (comma-separated after the colon):
  paper     sonnet's CIFAR-10 VQ-VAE: 128 hidden channels, 2 residual layers of 32,
            32x32 -> 8x8 codes, K = 512, D = 64, beta 0.25, EMA codebook (decay
            0.99), Adam 3e-4, batch 32, 100k steps: 695,491 parameters (encoder with
            its pre-VQ 1x1 convolution 372,416, codebook 32,768, decoder 290,307).
            The paper's result: 4.67 bits/dim (see jaxgen/families/vqvae/trainer.py for how
            jaxgen computes bits/dim).
  tiny      seconds, on the offline sklearn digits resized to 32x32: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
vqvae = config_file.module_beside(__file__, "vqvae_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "vqvae_cifar10", {"tiny", "paper"})
  c = vqvae.base()
  c.data = common.image_data("cifar10")
  c.model.update(num_hiddens=128, num_codes=512, code_dim=64,
                 # sonnet's example divides the error by the variance of the training
                 # pixels (CIFAR-10 in [0, 1]: about 0.063).
                 data_variance=0.063)
  c.optim.update(learning_rate=3e-4, schedule="constant", warmup_steps=0,
                 end_factor=1.0)
  c.train.update(batch_size=32, num_steps=100_000, log_every=100,
                 checkpoint_every=5000, sample_every=5000)
  if "tiny" in variants:
    c.data.update(name="digits", resize=(32, 32))
    vqvae.tiny(c)
  return c
