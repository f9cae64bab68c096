"""Blocks that configs of several families share, and their variant parsing (after
big_vision's ``configs/common.py`` and ``bvcc.parse_arg``). Each field's default lives
here, in the family's ``configs/<family>_base.py`` or in the config that uses it,
nowhere else. Every block takes ``**changes``: the fields that differ from it."""
import ml_collections

from jaxgen import config_file


def parse_arg(arg, name: str, allowed) -> set:
  """The comma-separated variants of ``arg`` (``configs/x.py:a,b``), checked."""
  variants = set(filter(None, (arg or "").split(",")))
  unknown = variants - set(allowed)
  if unknown:
    raise ValueError(f"Unknown variant(s) {sorted(unknown)} of {name}; use "
                     f"{', '.join(sorted(allowed))}.")
  return variants


def _block(defaults: dict, changes: dict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({**defaults, **changes})


IMAGE_DATA = dict(scale="unit", binarize="", dequantize=False, resize=(),
                  random_flip=False, tfds_data_dir="", workers=0)


def image_data(name: str, **changes) -> ml_collections.ConfigDict:
  """``config.data`` of the image dataset ``name``: pixels in [0, 1], as stored (no
  binarisation, dequantisation, resizing or flips), read in-process (workers 0).
  ``changes`` may add the fields a dataset or a family reads (``center_crop``,
  ``jitter_resize``, ...)."""
  return _block(dict(name=name, **IMAGE_DATA), changes)


def mnist5k_data(**changes) -> ml_collections.ConfigDict:
  """MNIST-5k (4,500 train / 500 test digits, offline) as ``config.data``."""
  unknown = set(changes) - set(IMAGE_DATA)
  if unknown:
    raise KeyError(f"mnist5k_data has no field(s) {sorted(unknown)}")
  return image_data("mnist5k", **changes)


def adam(**changes) -> dict:
  """One optimiser: Adam 1e-3 (betas 0.9, 0.999), 100 warm-up steps, then a cosine
  decay to 0.05 of the rate over ``config.train.num_steps``; no clipping."""
  return dict(dict(name="adam", learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8,
                   weight_decay=0.0, schedule="cosine", warmup_steps=100,
                   end_factor=0.05, grad_clip_norm=0.0), **changes)


def optim(ema_decay: float = 0.0, **changes) -> ml_collections.ConfigDict:
  """``config.optim`` of a one-optimiser family: ``adam(**changes)``, and the decay of
  the parameters' exponential moving average (0: none)."""
  return ml_collections.ConfigDict(dict(adam(**changes), ema_decay=ema_decay))


def translation_optim(num_steps: int) -> ml_collections.ConfigDict:
  """``config.optim`` of the image-to-image GANs (pix2pix, CycleGAN), as
  junyanz/pytorch-CycleGAN-and-pix2pix: Adam 2e-4 beta1 0.5 for each player, the rate
  constant for the first half of the ``num_steps`` then linear to zero; no EMA."""
  player = adam(learning_rate=2e-4, b1=0.5, schedule="constant_then_linear",
                warmup_steps=0, constant_steps=num_steps // 2, end_factor=0.0)
  return ml_collections.ConfigDict(dict(
      generator=dict(player), discriminator=dict(player), ema_decay=0.0))


def train(**changes) -> ml_collections.ConfigDict:
  """``config.train``: batch 64, 2,000 steps, a log line every 50, a checkpoint (the
  last 3 kept) and a picture of 64 samples every 1,000."""
  return _block(dict(batch_size=64, num_steps=2000, log_every=50,
                     checkpoint_every=1000, sample_every=1000, keep_checkpoints=3,
                     num_samples=64), changes)


def tiny_train(**changes) -> dict:
  """The ``config.train`` fields of a ``tiny`` variant (seconds, for tests): 4 steps
  of batch 8, each half of them logged, checkpointed and pictured (4 samples)."""
  return dict(dict(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2,
                   sample_every=2, num_samples=4), **changes)


def evaluation(**changes) -> ml_collections.ConfigDict:
  """``config.eval`` without sample metrics: the whole test split (``num_examples``
  0) in batches of 100; ``shuffled_baseline``: sample metrics also for samples
  conditioned on other examples' inputs (conditional families; jaxgen/evaluators)."""
  return _block(dict(split="test", batch_size=100, num_examples=0, metrics=(),
                     shuffled_baseline=False), changes)


def mnist_classifier_eval(**changes) -> ml_collections.ConfigDict:
  """``config.eval`` with sample metrics in the shipped MNIST classifier's features:
  1,000 samples against the 4,500 training digits, plus the family's own fields
  (iw_samples, ...)."""
  return evaluation(**{**dict(
      metrics=("fid", "is"), feature_net="mnist_classifier", num_samples=1000,
      reference_split="train", sample_batch_size=100), **changes})


# The sample metrics of a model of digits: FID and IS in the shipped MNIST classifier's
# features, and the coverage metrics: the classes drawn and how varied each is
# (class_coverage), k-NN precision and recall (precision_recall). A ``tiny`` variant
# leaves the coverage metrics out (``tiny_metrics``): tests evaluate in seconds.
COVERAGE_METRICS = ("class_coverage", "precision_recall")
DIGIT_METRICS = ("fid", "is", *COVERAGE_METRICS)


def tiny_metrics(metrics) -> tuple:
  """A ``tiny`` variant's ``config.eval.metrics``: ``metrics`` less COVERAGE_METRICS."""
  return tuple(m for m in metrics if m not in COVERAGE_METRICS)


def inception_eval(**changes) -> ml_collections.ConfigDict:
  """``config.eval`` as the papers measure: 1,000 test examples for the family's own
  metrics; FID and IS of 50,000 samples against the training set, in TF-comparable
  Inception features (pytorch-fid's weights; jaxgen/metrics/inception.py)."""
  return evaluation(**{**dict(
      num_examples=1000, metrics=("fid", "is"), feature_net="inception",
      inception_mode="tf", weights="", num_samples=50_000, reference_split="train",
      sample_batch_size=500), **changes})


def compute(**changes) -> ml_collections.ConfigDict:
  """``config.compute``: the networks' compute dtype, the default matmul precision
  and the random-number implementation; jaxgen/precision.py holds their defaults
  (``auto`` picks per platform) and says what each means."""
  from jaxgen import precision
  return precision.block(**changes)


def over_stages(c: ml_collections.ConfigDict, family: str, stage_configs: dict):
  """Makes ``c`` a config of ``family`` trained over frozen stages: ``stage_configs``
  (a config's ``STAGE_CONFIGS``) maps each stage role to the config that trains it.
  ``config.stages`` gets a run directory per role, to set on the command line, and
  ``config.data`` is the autoencoder stage's: the images as that stage saw them."""
  c.family = family
  c.stages = ml_collections.ConfigDict({role: "" for role in stage_configs})
  c.data = config_file.sibling(__file__, stage_configs["autoencoder"]).data


def config(family: str, **blocks) -> ml_collections.ConfigDict:
  """A config of ``family``: seed 0, ``compute()`` and ``blocks`` (data, model, ...)."""
  return ml_collections.ConfigDict(dict(family=family, seed=0, compute=compute(),
                                        **blocks))
