"""Blocks that many configs share, and their variant parsing (after big_vision's
``configs/common.py`` and ``bvcc.parse_arg``). Each field's default lives here or in
the config that uses it, nowhere else."""
import ml_collections


def parse_arg(arg, name: str, allowed) -> set:
  """The comma-separated variants of ``arg`` (``configs/x.py:a,b``), checked."""
  variants = set(filter(None, (arg or "").split(",")))
  unknown = variants - set(allowed)
  if unknown:
    raise ValueError(f"Unknown variant(s) {sorted(unknown)} of {name}; use "
                     f"{', '.join(sorted(allowed))}.")
  return variants


def mnist5k_data(**changes) -> ml_collections.ConfigDict:
  """MNIST-5k (4,500 train / 500 test digits, offline) as ``config.data``."""
  block = dict(name="mnist5k", scale="unit", binarize="", dequantize=False, resize=(),
               random_flip=False, tfds_data_dir="", workers=0)
  unknown = set(changes) - set(block)
  if unknown:
    raise KeyError(f"mnist5k_data has no field(s) {sorted(unknown)}")
  return ml_collections.ConfigDict({**block, **changes})


def mnist_classifier_eval(**fields) -> ml_collections.ConfigDict:
  """``config.eval`` with sample metrics in the shipped MNIST classifier's features:
  1,000 samples against the 4,500 training digits, plus the family's own ``fields``
  (split, batch_size, ...)."""
  return ml_collections.ConfigDict(dict(
      metrics=("fid", "is"), feature_net="mnist_classifier", num_samples=1000,
      reference_split="train", sample_batch_size=100, **fields))


def compute(**changes) -> ml_collections.ConfigDict:
  """``config.compute``: the networks' compute dtype, the default matmul precision
  and the random-number implementation; jaxgen/precision.py holds their defaults
  (``auto`` picks per platform) and says what each means."""
  from jaxgen import precision
  return precision.block(**changes)
