"""The device mesh, and how batches and the training state are placed on it.

Data parallelism only: one mesh axis ``data`` spanning every device (of every
host); batches are sharded along their leading axis, the state is replicated. With
several processes (``initialize_distributed``), each process places its own rows of
a global batch (``put_batch``), host values that every process holds alike are placed
with ``put_global``, and ``to_host`` brings a global array to every process.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxgen.errors import ConfigError

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over ``devices`` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "train.batch_size"):
  """Raise a clear error unless the global batch splits evenly over devices."""
  n = mesh.devices.size
  if batch_size % n:
    raise ConfigError(
        f"{what}={batch_size} is not divisible by the number of devices ({n}): "
        f"every device must get the same share of the batch. Choose a multiple of "
        f"{n}, e.g. --config.{what}={max(n, batch_size // n * n)}.")
  if batch_size % jax.process_count():
    raise ConfigError(f"{what}={batch_size} is not divisible by the number of "
                      f"processes ({jax.process_count()}).")


def process_slice(global_batch_size: int) -> slice:
  """The rows of a global batch that this process loads."""
  per_process = global_batch_size // jax.process_count()
  start = jax.process_index() * per_process
  return slice(start, start + per_process)


def initialize_distributed(coordinator_address=None, num_processes=None,
                           process_id=None):
  """``jax.distributed.initialize`` (SLURM, Open MPI, TPU pods and
  ``JAX_COORDINATOR_ADDRESS`` are detected where the arguments are None), with the
  gloo collectives that CPU devices need across processes."""
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


def put_batch(batch: dict, mesh: Mesh) -> dict:
  """Place this process's rows of a global batch onto the mesh, batch-sharded."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      batch)


def put_global(tree, sharding: NamedSharding):
  """Place host values that every process holds alike (the same rows everywhere) with
  ``sharding``; each process fills only its own devices' shards."""
  def put(x):
    if isinstance(x, jax.Array) and x.sharding == sharding:
      return x
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree.map(put, tree)


def replicate(tree, mesh: Mesh):
  """Place a pytree (for example, a freshly built state) replicated on the mesh."""
  return put_global(tree, replicated(mesh))


def to_host(x) -> np.ndarray:
  """A global array as one host array on every process (gathered from all processes
  where this one does not hold every shard)."""
  if not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated:
    return np.asarray(x)
  from jax.experimental import multihost_utils
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))
