r"""The DALL-E discrete VAE at the paper's size: 256x256 -> 32x32 grid of 8192 codes.

  python -m jaxgen.main --config=configs/dvae_imagenet.py:paper --mode=summary
  python -m jaxgen.main --config=configs/dvae_imagenet.py:paper --workdir=/tmp/dvae_imagenet

Needs ImageNet through tensorflow-datasets (``imagenet2012``, prepared from the
manually downloaded archives). OpenAI's trained weights load without training: see
jaxgen/families/dvae/trainer.py (``load_openai``).

Variants (comma-separated after the colon):
  paper     openai/DALL-E's Encoder / Decoder (4 groups, n_hid 256, 2 blocks per
            group, n_init 128, 8192 codes): 53,786,240 / 43,829,766 parameters.
            Training as the paper (Ramesh et al. 2021, appendix A.2): Adam (0.9,
            0.999, eps 1e-8, weight decay 1e-5), learning rate 1e-4 cosine-decayed
            to 1.25e-6 (the paper over its first 1.2M updates; jaxgen's learning-
            rate schedule spans config.train.num_steps), Gumbel temperature cosine 1 -> 1/16 over
            150k updates, KL weight 0 -> 6.6 over the first 5,000 updates, batch
            512 (the paper's, across 64 GPUs), 3M updates.
  tiny      seconds, on the offline sklearn digits resized to 32x32: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
dvae = config_file.module_beside(__file__, "dvae_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "dvae_imagenet", {"tiny", "paper"})
  c = dvae.base()
  c.data = common.image_data("imagenet2012", resize=(256, 256), random_flip=True)
  c.model.update(group_count=4, n_hid=256, n_blk_per_group=2, n_init=128,
                 vocab_size=8192, min_scale=0.0)  # the paper's unbounded scale
  c.optim.update(name="adamw", learning_rate=1e-4, weight_decay=1e-5, warmup_steps=0,
                 end_factor=1.25e-6 / 1e-4, grad_clip_norm=0.0)
  c.train.update(batch_size=512, num_steps=3_000_000, log_every=100,
                 checkpoint_every=10_000, sample_every=10_000, num_samples=16)
  c.schedules = dvae.schedules(temperature_steps=150_000, kl_weight_steps=5000)
  c.eval.update(split="validation", batch_size=64)
  if "tiny" in variants:
    c.data.update(name="digits", resize=(32, 32), random_flip=False)
    dvae.tiny(c)
    c.optim.update(name="adam", learning_rate=1e-3, weight_decay=0.0, end_factor=0.05)
    c.eval.split = "test"
  return c
