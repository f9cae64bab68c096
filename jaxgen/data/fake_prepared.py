"""Prepared-looking tensorflow-datasets folders, written offline from random examples.

Training reads a tfds dataset only once it is prepared (``python -m
jaxgen.data.prepare NAME``, which needs the internet). Benchmarks and tests that must
exercise that read path where no dataset is prepared call ``write``: it writes
``DATA_DIR/NAME/VERSION/`` as ``download_and_prepare(file_format="array_record")``
would, with the registered builder's own features, file names, shard count and
``dataset_info.json``, but with random examples of the real shapes. The unchanged
read path (``tfds.builder(NAME, data_dir=DATA_DIR).as_data_source``, jaxgen's
``TfdsSource``) then reads them like the real dataset:

  from jaxgen.data import fake_prepared
  fake_prepared.write("cifar10", "/tmp/fake_tfds", {"train": 1000, "test": 100})
  # then --config.data.tfds_data_dir=/tmp/fake_tfds

The images are smooth random colour fields with a little pixel noise, so that their
files come near the real ones' sizes (and decoding costs): a CIFAR-10 record is
~2.4 KB (the real ones ~2.3 KB), a CelebA JPEG ~7.6 KB at quality 90 (the real ones
~7 KB). The other features (labels, ids, CelebA's landmarks, attributes and
identity) are random values of their types, so a record parses like the real one.
Example ``i`` of a split is example ``i`` of the files (unshuffled) and depends only
on (seed, split, i): ``example`` returns it with its images as the arrays they were
encoded from. PNG reads back exactly; JPEG (CelebA's format) is lossy, within a few
grey levels. PIL encodes the images, so TensorFlow is not needed.
"""
from __future__ import annotations

import io
import os
import zlib

import numpy as np

# The real split sizes of some datasets, for the split names and proportions.
REAL_SPLITS = {
    "cifar10": {"train": 50_000, "test": 10_000},
    "cifar100": {"train": 50_000, "test": 10_000},
    "mnist": {"train": 60_000, "test": 10_000},
    "fashion_mnist": {"train": 60_000, "test": 10_000},
    "celeb_a": {"train": 162_770, "validation": 19_867, "test": 19_962},
}
JPEG_QUALITY = 90
NOISE = {"png": 8, "jpeg": 3}  # +- grey levels of pixel noise on the smooth field


def split_sizes(name: str, num_train: int) -> dict:
  """``num_train`` training examples and the other splits of ``name`` in their real
  proportion (at least 1 each; a test split of a tenth for datasets not listed)."""
  real = REAL_SPLITS.get(name, {"train": 10, "test": 1})
  return {s: max(1, round(num_train * n / real["train"])) for s, n in real.items()}


def _rng(seed: int, split: str, index: int, path: str) -> np.random.Generator:
  return np.random.default_rng([seed, zlib.crc32(split.encode()), index,
                                zlib.crc32(path.encode())])


def image(shape, seed: int, split: str, index: int, key: str = "image",
          encoding: str = "png") -> np.ndarray:
  """The uint8 image (H, W, C) that ``write`` encodes as feature ``key`` of example
  ``index`` of ``split``."""
  from PIL import Image
  h, w, c = shape
  rng = _rng(seed, split, index, key)
  cell = max(4, min(h, w) // 7)
  low = rng.integers(0, 256, (max(2, -(-h // cell)), max(2, -(-w // cell)), c),
                     dtype=np.uint8)
  channels = [np.asarray(Image.fromarray(low[..., k]).resize((w, h), Image.BILINEAR))
              for k in range(c)]
  amp = NOISE.get(encoding, NOISE["png"])
  field = np.stack(channels, -1).astype(np.int16)
  field += rng.integers(-amp, amp + 1, field.shape, dtype=np.int16)
  return np.clip(field, 0, 255).astype(np.uint8)


def _encode(array: np.ndarray, encoding: str) -> bytes:
  from PIL import Image
  buf = io.BytesIO()
  pil = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
  if encoding == "jpeg":
    pil.save(buf, format="jpeg", quality=JPEG_QUALITY)
  else:
    pil.save(buf, format="png")
  return buf.getvalue()


def example(features, split: str, index: int, seed: int = 0,
            image_shape=None) -> dict:
  """Example ``index`` of ``split`` as ``write`` draws it for a tfds ``features``
  dict (``builder.info.features``): images as uint8 arrays, labels as ints, ..."""
  return _value(features, "", seed, split, index, image_shape)


def _value(feature, path: str, seed: int, split: str, index: int, image_shape):
  """A random value for one feature connector, as its ``encode_example`` takes it
  (but images as arrays: ``_encode_images`` turns them into their file bytes)."""
  import tensorflow_datasets as tfds
  f = tfds.features
  if isinstance(feature, f.FeaturesDict):
    return {k: _value(feature[k], f"{path}/{k}" if path else k, seed, split, index,
                      image_shape) for k in feature.keys()}
  if isinstance(feature, f.Image):
    shape = tuple(feature.shape)
    if None in shape:
      if image_shape is None:
        raise ValueError(f"Feature {path!r} has images of any size {shape}: pass "
                         f"image_shape=(H, W, C) to fake_prepared.write.")
      shape = tuple(image_shape)
    if feature.np_dtype != np.uint8:
      raise NotImplementedError(f"Feature {path!r}: only uint8 images are faked, "
                                f"not {feature.np_dtype}.")
    return image(shape, seed, split, index, path, feature.encoding_format or "png")
  rng = _rng(seed, split, index, path)
  if isinstance(feature, f.ClassLabel):
    return int(rng.integers(feature.num_classes))
  if isinstance(feature, f.Text):
    return f"{split}_{index:06d}"
  if isinstance(feature, f.Tensor) and None not in tuple(feature.shape):
    dtype, shape = np.dtype(feature.np_dtype), tuple(feature.shape)
    if dtype == np.bool_:
      value = rng.uniform(size=shape) < 0.5
    elif np.issubdtype(dtype, np.integer):
      value = rng.integers(0, 256, shape).astype(dtype)
    elif np.issubdtype(dtype, np.floating):
      value = rng.standard_normal(shape).astype(dtype)
    else:
      value = None
    if value is not None:
      return value if shape else value.item()
  raise NotImplementedError(f"Feature {path!r} ({type(feature).__name__}) has no "
                            f"fake values yet; add a case to "
                            f"jaxgen.data.fake_prepared._value.")


def _encode_images(feature, value):
  """``value`` with each image array replaced by its PNG or JPEG bytes, which
  ``encode_example`` stores as they are (as the real builders store the original
  files' bytes); PIL encodes, so TensorFlow is not needed."""
  import tensorflow_datasets as tfds
  if isinstance(feature, tfds.features.FeaturesDict):
    return {k: _encode_images(feature[k], v) for k, v in value.items()}
  if isinstance(feature, tfds.features.Image):
    return _encode(value, feature.encoding_format or "png")
  return value


def write(name: str, data_dir: str, num_examples: int | dict, seed: int = 0,
          image_shape=None, num_shards: int | None = None):
  """Write a prepared-looking array_record copy of the tfds dataset ``name`` into
  ``data_dir`` with random examples; return its builder (``as_data_source`` reads it).

  ``num_examples``: a dict split -> count, or a count of training examples (the other
  splits then in their real proportion, ``split_sizes``). ``num_shards`` per split
  (default: tfds's own rule, from the size). Refuses to overwrite a prepared dataset.
  """
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core import file_adapters
  from tensorflow_datasets.core.utils import shard_utils
  sizes = (dict(num_examples) if isinstance(num_examples, dict)
           else split_sizes(name, int(num_examples)))
  if not sizes or min(sizes.values()) < 1:
    raise ValueError(f"num_examples={num_examples!r}: every split needs at least one "
                     f"example.")
  builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
  if (builder.data_path / "dataset_info.json").exists():
    raise FileExistsError(f"{builder.data_path} already holds a prepared {name!r}; "
                          f"write the fake copy into another data_dir.")
  out = builder.data_path
  out.mkdir(parents=True, exist_ok=True)
  features = builder.info.features
  adapter = file_adapters.ADAPTER_FOR_FORMAT[tfds.core.FileFormat.ARRAY_RECORD]
  split_infos = []
  for split, n in sizes.items():
    serialize = lambda i, split=split: features.serialize_example(_encode_images(
        features, example(features, split, i, seed, image_shape)))
    shards = num_shards
    if not shards:  # tfds sizes shards from the serialized bytes; estimate them
      sample = [len(serialize(i)) for i in range(min(n, 20))]
      shards = shard_utils.ShardConfig.calculate_number_shards(
          total_size=int(np.mean(sample) * n), num_examples=n)
    shards = min(shards, n)
    template = tfds.core.ShardedFileTemplate(
        data_dir=out, dataset_name=builder.name, split=split,
        filetype_suffix=adapter.FILE_SUFFIX)
    bounds = [0, *shard_utils.get_shard_boundaries(n, shards)]
    num_bytes = 0
    for k in range(shards):
      records = [serialize(i) for i in range(bounds[k], bounds[k + 1])]
      num_bytes += sum(map(len, records))
      path = template.sharded_filepath(shard_index=k, num_shards=shards)
      adapter.write_examples(path, enumerate(records))
    split_infos.append(tfds.core.SplitInfo(
        name=split, shard_lengths=np.diff(bounds).tolist(), num_bytes=num_bytes,
        filename_template=template))
  with open(os.path.join(os.fspath(out), _MARK), "w") as f:
    f.write(f"Random examples written by jaxgen.data.fake_prepared (seed {seed}), "
            f"not the real {name}.\n")
  # As download_and_prepare finishes: the splits into the info, then
  # dataset_info.json and features.json (is_prepared() looks for these) last.
  builder.info.set_splits(tfds.core.SplitDict(split_infos))
  builder.info.write_to_directory(out)
  return tfds.builder(name, data_dir=data_dir)


def is_fake(builder) -> bool:
  """Whether a prepared builder's files were written by ``write``."""
  return os.path.isfile(os.path.join(os.fspath(builder.data_path), _MARK))


_MARK = "FAKE_RANDOM_EXAMPLES"
