"""Weights files cannot exhaust memory: every reader of PyTorch pickles (the zip and
legacy state dicts, NVlabs' network pickles, OpenAI's pickled dVAE modules) checks a
tensor's storage, offset, sizes and strides against the bytes in the file before it
allocates anything. The files are made by hand with the module's pickle writer, as an
attacker would."""
import io
import pickle
import struct
import tempfile
import zipfile

import pytest

from jaxgen.weights import dvae_openai, stylegan2, torch_pickle

HUGE = (10**7, 10**7)  # 1e14 float32 elements: 364 TiB if allocated


from jaxgen.weights.torch_pickle import Call, Global, PersistentId, dumps

ORDERED_DICT = Call(Global("collections", "OrderedDict"), ())


def rebuild(storage, size, stride, offset=0):
  return Call(Global("torch._utils", "_rebuild_tensor_v2"),
              (storage, offset, tuple(size), tuple(stride), False, ORDERED_DICT))


def storage_id(numel):
  return PersistentId(("storage", Global("torch", "FloatStorage"), "0", "cpu", numel))


def tensor(numel, size, stride, offset=0):
  return rebuild(storage_id(numel), size, stride, offset)


def zip_file(path, obj, storage=b"\0" * 4):
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", dumps(obj))
    z.writestr("archive/byteorder", b"little")
    z.writestr("archive/data/0", storage)
  return path


def legacy_bytes(obj, keys=("0",), counts=(1,)) -> bytes:
  out = io.BytesIO()
  for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
    pickle.dump(header, out, protocol=2)
  out.write(dumps(obj))
  pickle.dump(list(keys), out, protocol=2)
  for n in counts:
    out.write(struct.pack("<q", n) + b"\0" * 4)
  return out.getvalue()


BROADCAST = "outnumbers its storage"
OVERCLAIM = "the file has .* bytes for it|declares"


@pytest.mark.parametrize("numel, size, stride, offset, message", [
    (1, HUGE, (0, 0), 0, BROADCAST),               # the 554-byte file of issue 31
    (10**12, (10**6, 10**6), (10**6, 1), 0, OVERCLAIM),  # a storage beyond the file
    (1, (2,), (1,), 0, BROADCAST),
    (1, (1,), (1,), 1, "reaches past its storage"),
    (1, (1,), (-1,), 0, "invalid tensor"),
    (1, (1,), (1,), 10**30, "reaches past its storage"),
])
def test_a_state_dict_is_checked_before_anything_is_allocated(tmp_path, numel, size,
                                                              stride, offset, message):
  obj = {"w": tensor(numel, size, stride, offset)}
  path = zip_file(tmp_path / "zip.pth", obj)
  with pytest.raises(torch_pickle.TorchPickleError, match=message):
    torch_pickle.load_state_dict(path)
  legacy = tmp_path / "legacy.pth"
  legacy.write_bytes(legacy_bytes(obj, counts=(numel,)))
  with pytest.raises(torch_pickle.TorchPickleError, match=message):
    torch_pickle.load_state_dict(legacy)


def test_a_legacy_count_after_the_pickle_is_checked_before_reading(tmp_path):
  path = tmp_path / "legacy.pth"
  path.write_bytes(legacy_bytes({"w": tensor(1, (1,), (1,))}, counts=(2**40,)))
  with pytest.raises(torch_pickle.TorchPickleError, match="bytes for it"):
    torch_pickle.load_state_dict(path)


def test_the_honest_tensor_of_those_files_reads():  # the files above are otherwise sound
  path = io.BytesIO()
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", dumps({"w": tensor(1, (1,), (1,))}))
    z.writestr("archive/data/0", struct.pack("<f", 2.5))
  path.seek(0)
  with tempfile.NamedTemporaryFile(suffix=".pth") as f:
    f.write(path.getvalue())
    f.flush()
    assert torch_pickle.load_state_dict(f.name)["w"].tolist() == [2.5]


def test_an_nvlabs_pickle_is_checked_before_anything_is_allocated(tmp_path):
  def embedded(numel):  # a storage as NVlabs' pickles hold it: a legacy torch.save
    return Call(Global("torch.storage", "_load_from_bytes"),
                (legacy_bytes(storage_id(numel), counts=(numel,)),))

  for storage, size, stride, message in (
      (embedded(1), HUGE, (0, 0), BROADCAST),
      (embedded(10**12), (10**6, 10**6), (10**6, 1), OVERCLAIM)):
    path = tmp_path / "network.pkl"
    path.write_bytes(dumps({"G_ema": rebuild(storage, size, stride)}))
    with pytest.raises(torch_pickle.TorchPickleError, match=message):
      net = stylegan2.load_network_pkl(path)["G_ema"]
      net.to_numpy()  # a tensor is made an array when a network reads it


def test_a_pickled_dvae_module_is_checked_before_anything_is_allocated(tmp_path):
  for numel, size, stride, message in ((1, HUGE, (0, 0), BROADCAST),
                                       (10**12, (10**6, 10**6), (10**6, 1), OVERCLAIM)):
    path = zip_file(tmp_path / "encoder.pkl", tensor(numel, size, stride))
    with pytest.raises(torch_pickle.TorchPickleError, match=message):
      torch_pickle.load_pickled_module(path, dvae_openai.ENCODER_CLASSES)
