r"""CLIP trained from scratch on MNIST-5k's captioned digits (mnist5k_captions).

  python -m jaxgen.main --config=configs/clip_mnist.py --workdir=/tmp/clip_mnist
  python -m jaxgen.main --config=configs/clip_mnist.py --workdir=/tmp/clip_mnist --mode=eval

Variants (comma-separated after the colon):
  (default) a ViT on the 32 x 32 canvas (4 x 4 patches from a convolutional stem
            of two 3x3 stride-2 convs, 32 and 64 channels) and a causal text tower,
            each 3 layers of width 96, a 96-d shared space; each training digit laid
            out 8 times (data.layouts), half of the training captions cut after the
            digit (model.short_caption_rate); AdamW (no decay on biases, norms and
            the temperature), 4,000 steps of batch 128 (about 50 min on a loaded
            2-core CPU).
  captions2 the two-digit set (32 x 64 canvases, "a small 3 left of a thick 7"),
            with the order test in its evaluation; each caption with its digits
            exchanged is a hard negative (model.swapped_negatives, NegCLIP).
  paper     OpenAI's ViT-B/32 (no stem; 151,277,313 parameters with its 49,408-id vocabulary
            and 77 positions; the captions' word ids index its first rows), images
            resized to 224 x 224 RGB in the graph; --config.model.init=openai (or a
            Hugging Face model.safetensors) starts from OpenAI's weights (fine-tuning).
  tiny      seconds: for tests.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "clip_mnist", {"tiny", "captions2", "paper"})
  two = "captions2" in variants
  c = common.config(
      "clip",
      data=common.image_data("mnist5k_captions2" if two else "mnist5k_captions",
                             context_length=16, derived_seed=0, layouts=8),
      model=ml_collections.ConfigDict(dict(
          embed_dim=96, image_size=(32, 64) if two else (32, 32), image_channels=1,
          patch_size=4, vision_width=96, vision_layers=3, vision_heads=4,
          text_width=96, text_layers=3, text_heads=4,
          context_length=0,  # 0: the captions' (config.data.context_length)
          vocab_size=0,  # 0: the caption tokenizer's
          init="",  # "", "openai" or a Hugging Face model.safetensors
          conv_stem=(32, 64),  # 3x3 stride-2 convs before a 1x1 patch conv
          short_caption_rate=0.5,  # training captions cut after the digit
          swapped_negatives=two)),  # NegCLIP: the caption with its digits exchanged
      optim=common.optim(name="adamw", learning_rate=5e-4, b2=0.98, eps=1e-6,
                         weight_decay=0.1, weight_decay_mask="matrices",
                         warmup_steps=100),
      train=common.train(batch_size=128, num_steps=4000, log_every=50,
                         checkpoint_every=1000, sample_every=1000, num_samples=16),
      eval=common.evaluation(batch_size=500))
  if two:
    c.train.num_steps = 2000  # twice the pixels per step; 2,000 steps is about an hour
  if "paper" in variants:
    c.model.update(embed_dim=512, image_size=(224, 224), image_channels=3, patch_size=32,
                   vision_width=768, vision_layers=12, vision_heads=12,
                   text_width=512, text_layers=12, text_heads=8, context_length=77,
                   vocab_size=49408, conv_stem=())
    c.optim.update(learning_rate=1e-5, weight_decay=0.2, warmup_steps=50)
    c.train.update(batch_size=64, num_steps=1000)
    c.eval.batch_size = 100
  if "tiny" in variants:
    c.model.update(embed_dim=16, patch_size=8, vision_width=16, vision_layers=1,
                   vision_heads=2, text_width=16, text_layers=1, text_heads=2,
                   conv_stem=(4, 8, 8))
    c.train.update(common.tiny_train())
    c.optim.warmup_steps = 1
    c.eval.update(batch_size=8, num_examples=16)
  return c
