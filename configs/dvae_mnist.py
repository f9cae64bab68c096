r"""The DALL-E discrete VAE on MNIST-5k (4,500 train / 500 test digits, offline).

  python -m jaxgen.main --config=configs/dvae_mnist.py --workdir=/tmp/dvae_mnist

Variants (comma-separated after the colon):
  (default) the DALL-E architecture at a small size: 3 groups (28x28 -> 7x7 codes),
            n_hid 32, 1 block per group, n_init 32, K = 512 codes; logit-Laplace
            likelihood (eps 0.1), its scale floored at 0.5 (model.min_scale; the
            paper has none, but unfloored the digits' exact-zero background drives
            the scale toward 0 and the codes go unread); Gumbel temperature cosine
            1 -> 1/16 over the run, KL weight linear 0 -> 0.55 over the first 500
            steps (the paper's 6.6 per 192 pixel values of a code, here 16; the
            paper ramps over 5,000 of its 3M steps), Adam with a cosine
            learning-rate decay; 4,000 steps of batch 64, about 15 min here
            (docs/results.md, "Training runs", dvae_mnist: test PSNR 22.6 dB, the
            MNIST classifier reads 0.962 of the reconstructions right).
  captions  the same on mnist5k_captions' 32x32 canvases (8x8 codes): the stage of
            configs/dalle_mnist.py.
  captions2 the same on mnist5k_captions2's 32x64 canvases (8x16 codes): the stage
            of configs/dalle_mnist.py:captions2.
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
dvae = config_file.module_beside(__file__, "dvae_base")
aekl = config_file.module_beside(__file__, "autoencoder_kl_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "dvae_mnist", {"tiny", "captions", "captions2"})
  c = dvae.base()
  if variants & {"captions", "captions2"}:
    c.data = aekl.captions_data()  # the captioned canvases, as the text-to-image
    if "captions2" in variants:    # families over this stage see them
      c.data.name = "mnist5k_captions2"
  if "tiny" in variants:
    dvae.tiny(c)
    c.optim.warmup_steps = 1
    if variants & {"captions", "captions2"}:
      c.model.group_count = 3  # 8 x 8 codes of a 32 x 32 canvas, as the default's
  return c
