"""Read and write PyTorch state dicts (``.pth`` files) with only the standard library and numpy.

``load_state_dict(path)`` reads what ``torch.save(model.state_dict(), path)`` writes, in the
zip format (the default since torch 1.6) and in the legacy format that preceded it, into a
``dict[str, np.ndarray]``. The pickle inside is read by a restricted unpickler that builds
nothing but ordered dicts and tensors, so a weights file cannot run code.
``save_state_dict(path, arrays)`` writes the zip format, which ``torch.load`` reads.

Nothing a file says is allocated before it is checked against the bytes the file
holds: a storage's element count against its record (zip) or the bytes left (legacy),
and a tensor's offset, sizes and strides against its storage, which it may not
outnumber (a (1e7, 1e7) tensor of strides (0, 0) over one element is refused). So
reading a file allocates at most a few times its size.
"""
from __future__ import annotations

import collections
import dataclasses
import io
import math
import numbers
import os
import pickle
import struct
import zipfile
from typing import Mapping

import numpy as np

from jaxgen.errors import UserError

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_STORAGE_NAMES = {np.dtype(dtype): name for name, dtype in _STORAGE_DTYPES.items()}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_ZIP_ALIGNMENT = 64  # torch aligns tensor data in its archives, for memory mapping
_DEFLATE_MAX_RATIO = 1032  # deflate expands a compressed byte into at most this many


class TorchPickleError(UserError):
  """A file is not a readable PyTorch state dict."""


@dataclasses.dataclass(frozen=True)
class _StorageType:
  dtype: np.dtype


class Storage:
  """A flat typed buffer; in the legacy format its bytes arrive after the pickle."""

  def __init__(self, dtype: np.dtype, numel: int, data: np.ndarray | None = None):
    self.dtype, self.numel, self.data = dtype, numel, data


@dataclasses.dataclass(frozen=True)
class Tensor:
  """A view (offset, sizes, strides in elements) into a storage, made an array later."""
  storage: Storage
  offset: int
  size: tuple
  stride: tuple

  def to_numpy(self) -> np.ndarray:
    data = self.storage.data
    if data is None or len(data) != self.storage.numel:
      raise TorchPickleError("a tensor's storage has no data")
    size, stride = tuple(self.size), tuple(self.stride)
    if (not all(_is_int(v) for v in (self.offset, *size, *stride))
        or len(size) != len(stride) or min(size + stride, default=0) < 0):
      raise TorchPickleError(f"invalid tensor sizes {size!r:.100}, strides {stride!r:.100} "
                             f"or offset {self.offset!r:.100}")
    if 0 in size:
      return np.zeros(size, data.dtype)
    count = math.prod(size)
    if count > len(data):  # before anything of that size is allocated
      raise TorchPickleError(
          f"a tensor of sizes {size} and strides {stride} ({count} elements) "
          f"outnumbers its storage of {len(data)} elements in the file, which no "
          f"saved weights do")
    last = self.offset + sum((n - 1) * s for n, s in zip(size, stride))
    if self.offset < 0 or last >= len(data):
      raise TorchPickleError(f"a tensor of sizes {size}, strides {stride} and offset "
                             f"{self.offset} reaches past its storage of {len(data)} elements")
    view = np.lib.stride_tricks.as_strided(
        data[self.offset:], size, [s * data.itemsize for s in stride], writeable=False)
    return view.copy()


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_count(numel, itemsize: int, available: int, what: str) -> int:
  """A storage's element count from the pickle, checked against the bytes the file
  has for it (before they are read)."""
  if not _is_int(numel) or numel < 0:
    raise TorchPickleError(f"{what} has an invalid element count {numel!r:.100}")
  if numel * itemsize > available:
    raise TorchPickleError(f"{what} claims {numel} elements ({numel * itemsize} bytes), "
                           f"but the file has {available} bytes for it")
  return int(numel)


def _read_record(archive: zipfile.ZipFile, name: str, expected: int | None = None):
  """A record of the archive, its declared size checked before it is read: equal to
  ``expected`` bytes if given, and no more than its compressed bytes can hold."""
  info = archive.getinfo(name)
  bound = (info.compress_size if info.compress_type == zipfile.ZIP_STORED
           else info.compress_size * _DEFLATE_MAX_RATIO)
  if info.file_size > bound or (expected is not None and info.file_size != expected):
    raise TorchPickleError(
        f"the record {name} declares {info.file_size} bytes"
        + (f", expected {expected}" if expected is not None else "")
        + f", and the archive holds {info.compress_size} bytes of it")
  return archive.read(info)


def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  del requires_grad, backward_hooks, metadata  # autograd state, meaningless here
  if not isinstance(storage, Storage):
    raise TorchPickleError("a tensor is not backed by a storage")
  return Tensor(storage, storage_offset, tuple(size), tuple(stride))


def rebuild_parameter(data, requires_grad, backward_hooks):
  del requires_grad, backward_hooks
  return data


class _Unpickler(pickle.Unpickler):
  """Resolves only the globals of a state dict; storages come from ``load_storage``."""

  def __init__(self, file, load_storage):
    super().__init__(file)
    self._load_storage = load_storage

  def find_class(self, module, name):
    if (module, name) == ("collections", "OrderedDict"):
      return collections.OrderedDict
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
      return rebuild_tensor_v2
    if (module, name) == ("torch._utils", "_rebuild_parameter"):
      return rebuild_parameter
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(np.dtype(_STORAGE_DTYPES[name]))
    raise pickle.UnpicklingError(
        f"it refers to {module}.{name}, which a state dict of tensors does not contain")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)):
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.100}")
    return self._load_storage(pid)


def _load_zip(file, make_unpickler=None) -> object:
  """A zip-archive file; its object pickle read by ``make_unpickler(file,
  load_storage)`` (default ``_Unpickler``)."""
  make_unpickler = make_unpickler or _Unpickler
  with zipfile.ZipFile(file) as archive:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
      raise TorchPickleError("the archive has no data.pkl record")
    prefix = pickles[0][:-len("data.pkl")]
    if prefix + "byteorder" in names and archive.read(prefix + "byteorder") != b"little":
      raise TorchPickleError("it was written on a big-endian machine, which is not supported")
    storages = {}

    def load_storage(pid):
      _, storage_type, key, _, numel = pid[:5]
      if key not in storages:
        name = f"{prefix}data/{key}"
        itemsize = storage_type.dtype.itemsize
        numel = _check_count(numel, itemsize, archive.getinfo(name).file_size,
                             f"storage {key}")
        data = np.frombuffer(_read_record(archive, name, numel * itemsize),
                             storage_type.dtype)
        storages[key] = Storage(storage_type.dtype, numel, data)
      return storages[key]

    return make_unpickler(io.BytesIO(_read_record(archive, pickles[0])),
                          load_storage).load()


def load_legacy(f, make_unpickler=None) -> object:
  """The format of ``torch.save(..., _use_new_zipfile_serialization=False)``.

  Three small pickles (magic number, protocol, system info), the object pickle (read
  by ``make_unpickler``, default ``_Unpickler``), the list of storage keys, then each
  storage as an int64 element count and raw bytes.
  """
  make_unpickler = make_unpickler or _Unpickler
  def header():
    return _Unpickler(f, _no_storage).load()

  if header() != _LEGACY_MAGIC:
    raise TorchPickleError("it is neither a zip archive nor a legacy PyTorch file")
  if header() != _LEGACY_PROTOCOL:
    raise TorchPickleError("it uses an unknown legacy protocol version")
  sys_info = header()
  if not sys_info.get("little_endian", False):
    raise TorchPickleError("it was written on a big-endian machine, which is not supported")
  storages = {}

  def load_storage(pid):
    _, storage_type, key, _, numel = pid[:5]
    if len(pid) > 5 and pid[5] is not None:
      raise TorchPickleError("it uses storage views, written only by torch < 0.4; load and "
                             "save it again with a newer torch")
    if key not in storages:
      numel = _check_count(numel, storage_type.dtype.itemsize, _bytes_left(f),
                           f"storage {key!r:.100}")
      storages[key] = Storage(storage_type.dtype, numel)
    return storages[key]

  result = make_unpickler(f, load_storage).load()
  keys = _Unpickler(f, _no_storage).load()
  for key in keys:
    storage = storages[key]
    (numel,) = struct.unpack("<q", _read_exactly(f, 8))
    _check_count(numel, storage.dtype.itemsize, _bytes_left(f), f"storage {key!r:.100}")
    if numel != storage.numel:
      raise TorchPickleError(f"storage {key} holds {numel} elements, expected {storage.numel}")
    storage.data = np.frombuffer(_read_exactly(f, numel * storage.dtype.itemsize),
                                 storage.dtype)
  return result


def _no_storage(pid):
  raise pickle.UnpicklingError("storage outside the object pickle")


def _bytes_left(f) -> int:
  """The bytes of ``f`` after its position."""
  here = f.tell()
  end = f.seek(0, os.SEEK_END)
  f.seek(here)
  return end - here


def _read_exactly(f, n: int) -> bytes:
  data = f.read(n)
  if len(data) != n:
    raise EOFError(f"the file ends {n - len(data)} bytes early")
  return data


def load_state_dict(path) -> dict[str, np.ndarray]:
  """The tensors of a PyTorch state dict file, by name, as numpy arrays."""
  try:
    with open(path, "rb") as f:
      is_zip = f.read(4) == b"PK\x03\x04"
      f.seek(0)
      obj = _load_zip(f) if is_zip else load_legacy(f)
      if not isinstance(obj, dict):
        raise TorchPickleError(f"it holds a {type(obj).__name__}, not a dict of tensors")
      state = {}
      for key, value in obj.items():
        if not isinstance(value, Tensor):
          raise TorchPickleError(
              f"entry {key!r} is a {type(value).__name__}, not a tensor (a training "
              "checkpoint rather than a state dict? save model.state_dict() instead)")
        state[key] = value.to_numpy()
      return state
  except TorchPickleError as e:
    raise TorchPickleError(f"{path} is not a PyTorch state dict: {e}.") from None
  except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, ValueError,
          TypeError, IndexError, AttributeError, struct.error) as e:
    raise TorchPickleError(
        f"{path} cannot be read as a PyTorch state dict ({type(e).__name__}: {e}). The file "
        "is truncated or corrupt (an interrupted download?) or is not a .pth file of "
        "tensors; delete it and download it again.") from e


# Writing: torch's pickle refers to torch globals, which the standard pickler cannot emit
# without importing torch, so the few opcodes needed are written directly (protocol 2).


@dataclasses.dataclass(frozen=True)
class Global:
  module: str
  name: str


@dataclasses.dataclass(frozen=True)
class Call:
  func: Global
  args: tuple


@dataclasses.dataclass(frozen=True)
class PersistentId:
  pid: tuple


_ORDERED_DICT = Global("collections", "OrderedDict")


def emit(out: io.BytesIO, obj) -> None:
  if isinstance(obj, Global):
    out.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
  elif isinstance(obj, Call):
    emit(out, obj.func)
    emit(out, obj.args)
    out.write(pickle.REDUCE)
  elif isinstance(obj, PersistentId):
    emit(out, obj.pid)
    out.write(pickle.BINPERSID)
  elif isinstance(obj, bool):
    out.write(pickle.NEWTRUE if obj else pickle.NEWFALSE)
  elif isinstance(obj, int):
    if -2**31 <= obj < 2**31:
      out.write(pickle.BININT + struct.pack("<i", obj))
    else:
      data = obj.to_bytes(obj.bit_length() // 8 + 1, "little", signed=True)
      out.write(pickle.LONG1 + bytes([len(data)]) + data)
  elif isinstance(obj, str):
    data = obj.encode("utf-8")
    out.write(pickle.BINUNICODE + struct.pack("<I", len(data)) + data)
  elif isinstance(obj, bytes):  # protocol 3's opcode, as torch's own pickles use
    out.write(pickle.BINBYTES + struct.pack("<I", len(obj)) + obj)
  elif isinstance(obj, tuple):
    out.write(pickle.MARK)
    for item in obj:
      emit(out, item)
    out.write(pickle.TUPLE)
  elif isinstance(obj, dict):  # as torch writes a state dict: an OrderedDict
    emit(out, Call(_ORDERED_DICT, ()))
    if obj:
      out.write(pickle.MARK)
      for key, value in obj.items():
        emit(out, key)
        emit(out, value)
      out.write(pickle.SETITEMS)
  else:
    raise TypeError(f"cannot write a {type(obj).__name__}")


def dumps(obj) -> bytes:
  """The pickle (protocol 2) of ``obj``, built of ``Global``, ``Call``,
  ``PersistentId``, ints, strings, bytes, tuples and dicts (written as OrderedDicts):
  what torch writes, for any content (the tests write malformed files with it)."""
  out = io.BytesIO()
  out.write(pickle.PROTO + bytes([2]))
  emit(out, obj)
  out.write(pickle.STOP)
  return out.getvalue()


def _write_aligned(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
  """Store a record uncompressed, padding the local header so its data is aligned."""
  info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
  header_end = archive.fp.tell() + 30 + len(name.encode("utf-8")) + 4
  padding = -header_end % _ZIP_ALIGNMENT
  info.extra = b"FB" + struct.pack("<H", padding) + b"Z" * padding
  archive.writestr(info, data, compress_type=zipfile.ZIP_STORED)


def save_state_dict(path, arrays: Mapping[str, np.ndarray]) -> None:
  """Write numpy arrays as a PyTorch state dict in torch's zip format.

  Every tensor gets its own C-contiguous storage. ``torch.load(path)`` returns an
  OrderedDict of tensors equal to ``arrays``.
  """
  state, storages = {}, []
  for key, array in arrays.items():
    array = np.asarray(array)
    if array.dtype not in _STORAGE_NAMES:
      raise TypeError(f"{key}: dtype {array.dtype} has no PyTorch storage type here; "
                      f"supported: {', '.join(str(d) for d in _STORAGE_NAMES)}.")
    storage_key = str(len(storages))
    storages.append(array.astype(array.dtype.newbyteorder("<")).tobytes(order="C"))
    pid = ("storage", Global("torch", _STORAGE_NAMES[array.dtype]), storage_key, "cpu",
           array.size)
    strides = tuple(int(np.prod(array.shape[i + 1:])) for i in range(array.ndim))
    state[key] = Call(Global("torch._utils", "_rebuild_tensor_v2"), (
        PersistentId(pid), 0, array.shape, strides, False, Call(_ORDERED_DICT, ())))
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
    _write_aligned(archive, "archive/data.pkl", dumps(state))
    _write_aligned(archive, "archive/byteorder", b"little")
    for key, data in enumerate(storages):
      _write_aligned(archive, f"archive/data/{key}", data)
    _write_aligned(archive, "archive/version", b"3\n")


# Whole pickled modules (``torch.save(module, path)``, as OpenAI's DALL-E encoder.pkl and
# decoder.pkl are). Their pickle names the module classes; the reader below never
# imports or calls them. Each object of an allowed class becomes a ``PickledObject``
# that records the class's name and the state the pickle gives it (for an nn.Module:
# its __dict__, with ``_parameters``, ``_buffers`` and ``_modules``); any other global
# is refused.


@dataclasses.dataclass
class PickledObject:
  """An object of the class ``cls`` ("module.Name") as the pickle describes it:
  ``args`` of its construction and ``state`` (tensors as numpy arrays)."""
  cls: str
  args: tuple
  state: object

  @property
  def parameters(self) -> dict:
    return dict((self.state or {}).get("_parameters") or {})

  @property
  def children(self) -> dict:
    return dict((self.state or {}).get("_modules") or {})


class _Record:
  """What the restricted unpickler builds for an allowed class: data only."""
  _qualname = ""

  def __new__(cls, *args):
    obj = object.__new__(cls)
    obj.args, obj.state = args, None
    return obj

  def __setstate__(self, state):
    self.state = state


def _set(items=()):
  return set(items)


def _device(*args):
  return ("device", *args)


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
  del requires_grad, backward_hooks, state
  return data


class _ModuleUnpickler(_Unpickler):
  """A state-dict unpickler that also builds ``_Record``s of the allowed classes."""

  def __init__(self, file, load_storage, classes):
    super().__init__(file, load_storage)
    self._classes = {name: type(f"Pickled[{name}]", (_Record,), {"_qualname": name})
                     for name in classes}

  def find_class(self, module, name):
    qualname = f"{module}.{name}"
    if qualname in self._classes:
      return self._classes[qualname]
    if (module, name) in (("builtins", "set"), ("__builtin__", "set")):
      return _set
    if (module, name) == ("torch", "device"):
      return _device
    if (module, name) == ("torch._utils", "_rebuild_parameter_with_state"):
      return _rebuild_parameter_with_state
    try:
      return super().find_class(module, name)
    except pickle.UnpicklingError:
      raise pickle.UnpicklingError(
          f"it refers to {qualname}, which is not among the classes this reader "
          f"accepts ({', '.join(sorted(self._classes))})") from None

  def persistent_load(self, pid):
    # The legacy format replaces each module class by ("module", class, source file,
    # source code) so that torch can warn when the source changed; the source is
    # ignored here and the class is the record class that find_class gave.
    if (isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module"
        and isinstance(pid[1], type) and issubclass(pid[1], _Record)):
      return pid[1]
    return super().persistent_load(pid)


def _plain(obj):
  """Records -> PickledObject, tensors -> numpy arrays, containers recursively."""
  if isinstance(obj, _Record):
    return PickledObject(obj._qualname, tuple(_plain(a) for a in obj.args),
                         _plain(obj.state))
  if isinstance(obj, Tensor):
    return obj.to_numpy()
  if isinstance(obj, dict):
    return {k: _plain(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_plain(v) for v in obj)
  return obj


def load_pickled_module(path, classes) -> PickledObject:
  """The whole module that ``torch.save(module, path)`` wrote, as a tree of
  ``PickledObject``s, reading only the classes named in ``classes`` ("module.Name",
  e.g. "torch.nn.modules.container.Sequential"). No code from the file runs."""
  try:
    with open(path, "rb") as f:
      is_zip = f.read(4) == b"PK\x03\x04"
      f.seek(0)
      unpickler = lambda file, load_storage: _ModuleUnpickler(file, load_storage, classes)
      obj = _load_zip(f, unpickler) if is_zip else load_legacy(f, unpickler)
      return _plain(obj)
  except TorchPickleError as e:
    raise TorchPickleError(f"{path} is not a readable pickled PyTorch module: {e}.") from None
  except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, ValueError,
          TypeError, IndexError, AttributeError, struct.error) as e:
    raise TorchPickleError(
        f"{path} cannot be read as a pickled PyTorch module ({type(e).__name__}: {e}). "
        "The file is truncated or corrupt, or holds other classes than expected.") from e
