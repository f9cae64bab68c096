"""One run per workdir: an exclusive lock on ``WORKDIR/.lock`` held while training.

Two runs in one workdir would interleave orbax checkpoint writes and append to the
same ``metrics.jsonl``. ``WorkdirLock`` makes the second one stop at once, with a line
that names the first (PID, host, start time, command line)::

    with WorkdirLock(workdir, enabled=jax.process_index() == 0):
      train(...)

How it works. The lock is a POSIX record lock (``fcntl.lockf``, i.e. ``fcntl(F_SETLK)``
over the whole file) on an open file descriptor kept for the lifetime of the lock.
The kernel drops such a lock when the descriptor is closed or the process dies in any
way (SIGKILL, OOM kill, segfault), so a killed run never leaves a lock behind on a
local filesystem, and there is nothing to clean up. After locking, the holder writes
its PID, host, start time and command line into the file as JSON, for messages only;
what excludes is the kernel lock, never the file's content or existence. The file
is left in place on release (emptied), which is harmless.

Why ``lockf`` and not ``flock``: POSIX record locks are what network filesystems
implement across clients: NFSv4 (part of the protocol), NFSv3 through lockd/NLM,
Lustre mounted with ``-o flock``, GPFS/Spectrum Scale, CephFS, SMB/CIFS. ``flock`` on
NFS is emulated differently by kernel versions (local only before Linux 2.6.12,
mapped to byte-range locks after) and is off by default on Lustre.

Where it cannot work:

* NFS mounted with ``nolock`` (and some FUSE or object-store mounts such as
  s3fs/gcsfuse, and Lustre with ``localflock``): the kernel keeps locks local to
  the client. Runs on the same host still exclude each other, but runs on different
  hosts do not, and no error says so. Do not share such a workdir between hosts.
* Filesystems that refuse locks (NFSv3 with lockd/statd not running: ENOLCK; Lustre
  without a flock mount option: ENOSYS; some FUSE filesystems: EOPNOTSUPP/ENOTSUP):
  ``WorkdirLock`` raises ``LockingUnsupportedError`` saying so. Use a workdir on a
  filesystem with locks, or set ``JAXGEN_NO_LOCK=1`` to run without the lock at your
  own risk (a warning is printed), making sure yourself that one run at a time uses
  the workdir.
* NFS after a client host crashes: its locks last until the server notices (the
  NFSv4 lease, about 90 s; NFSv3 relies on statd at the client's reboot).

Multi-host jobs: only one process should lock (the one that writes checkpoints
and metrics); pass ``enabled=jax.process_index() == 0``. This module does not
import jax.

POSIX locks belong to the process, and closing any descriptor of the file drops all
of the process's locks on it. So this module never opens the lock file of a workdir
it holds a lock on, ``holder`` answers for such a workdir from memory, and a second
``WorkdirLock`` on the same workdir in the same process is refused (no re-entrance).
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import shlex
import socket
import struct
import sys
import threading
import time
import warnings

from jaxgen.errors import UserError

LOCK_NAME = ".lock"
NO_LOCK_ENV = "JAXGEN_NO_LOCK"

# errno values by which a filesystem says it does not do record locks.
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}
# errno values of a non-blocking lock that another process holds.
_HELD = {errno.EACCES, errno.EAGAIN}

# Locks this process holds: real path of the lock file -> the holder's info.
_held: dict[str, dict] = {}
_held_guard = threading.Lock()


class WorkdirLockError(UserError, RuntimeError):
  """The workdir lock could not be taken (not writable, or another problem)."""


class WorkdirLockedError(WorkdirLockError):
  """Another live process holds the workdir's lock."""


class LockingUnsupportedError(WorkdirLockError):
  """The workdir's filesystem does not support POSIX record locks."""


class WorkdirLockWarning(UserWarning):
  """Running without the workdir lock (JAXGEN_NO_LOCK)."""


def lock_path(workdir: str) -> str:
  return os.path.join(workdir, LOCK_NAME)


def _no_lock_requested() -> bool:
  return os.environ.get(NO_LOCK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _my_info() -> dict:
  now = time.time()
  return {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "start_time": now,
      "start_time_iso": datetime.datetime.fromtimestamp(now).astimezone().isoformat(
          timespec="seconds"),
      "argv": list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]),
  }


class WorkdirLock:
  """Exclusive lock on ``workdir/.lock`` for one run; a context manager.

  ``acquire`` (or ``with``) creates the workdir if needed and takes the lock at once,
  or raises: ``WorkdirLockedError`` if another live process holds it,
  ``LockingUnsupportedError`` if the filesystem refuses locks, ``WorkdirLockError`` if
  the lock file cannot be created (e.g. the workdir is not writable). With
  ``enabled=False`` (processes other than 0 of a multi-host job) it does nothing;
  with ``JAXGEN_NO_LOCK=1`` in the environment it warns and does nothing.
  """

  def __init__(self, workdir: str, enabled: bool = True):
    self.workdir = workdir
    self.path = lock_path(workdir)
    self.enabled = enabled
    self.info: dict | None = None  # what was written into the lock file
    self._fd: int | None = None
    self._key: str | None = None

  @property
  def locked(self) -> bool:
    return self._fd is not None

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()

  def acquire(self) -> None:
    if not self.enabled or self._fd is not None:
      return
    if _no_lock_requested():
      warnings.warn(
          f"{NO_LOCK_ENV} is set: running without the lock on {self.workdir}. Make "
          f"sure no other run uses this workdir at the same time, or checkpoints and "
          f"metrics.jsonl will be corrupted.", WorkdirLockWarning, stacklevel=2)
      return
    try:
      os.makedirs(self.workdir, exist_ok=True)
      key = os.path.realpath(self.path)
      for _ in range(5):  # until the file we lock is the one at the path
        with _held_guard:
          if key in _held:  # checked before opening: closing would drop our lock
            raise WorkdirLockedError(_refusal(self.workdir, _held[key], self_=True))
          fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
          try:
            _lock(fd, self.workdir)
            if _same_file(fd, self.path):
              _held[key] = info = _my_info()
              break
          except BaseException:
            os.close(fd)
            raise
          os.close(fd)  # the file was removed or replaced meanwhile: lock the new one
      else:
        raise WorkdirLockError(f"The lock file {self.path} keeps being replaced while "
                               f"locking it; is something deleting it?")
    except WorkdirLockError:
      raise
    except OSError as e:
      raise WorkdirLockError(
          f"Cannot create the lock file {self.path} ({type(e).__name__}: "
          f"{e.strerror or e}): the workdir must be a writable directory. Fix its "
          f"permissions or choose another --workdir.") from e
    self._fd, self._key, self.info = fd, key, info
    try:  # for messages only: the kernel lock is what excludes
      data = json.dumps(info).encode() + b"\n"
      os.ftruncate(fd, 0)
      os.pwrite(fd, data, 0)
      os.fsync(fd)
    except OSError as e:
      warnings.warn(f"Could not record the lock holder in {self.path}: {e}",
                    WorkdirLockWarning, stacklevel=2)

  def release(self) -> None:
    if self._fd is None:
      return
    fd, self._fd = self._fd, None
    try:
      os.ftruncate(fd, 0)  # no stale details for the next reader
    except OSError:
      pass
    with _held_guard:
      _held.pop(self._key, None)
      os.close(fd)  # drops the lock


def holder(workdir: str) -> dict | None:
  """Who holds ``workdir``'s lock, without taking it: a dict with ``pid``, ``host``,
  ``start_time`` (Unix time), ``start_time_iso`` and ``argv`` (each ``None`` where
  not recorded yet), or ``None`` when nobody holds it."""
  path = lock_path(workdir)
  key = os.path.realpath(path)
  with _held_guard:
    if key in _held:
      return dict(_held[key])
    try:
      fd = os.open(path, os.O_RDONLY)
    except OSError:
      return None
    try:
      held, kernel_pid = _test_lock(fd)
      if held is False:
        return None
      info = _read_info(fd)
    finally:
      os.close(fd)
  if held is None:  # the filesystem cannot say: trust the record if it is plausible
    if not info.get("pid") or _dead_here(info):
      return None
  elif not _plausible(info, kernel_pid):
    info = _normal({"pid": kernel_pid or None})
  return info


def _lock(fd: int, workdir: str) -> None:
  """Take the lock or raise why not (the caller closes ``fd`` on errors)."""
  try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    if e.errno in _HELD:
      raise WorkdirLockedError(_refusal(workdir, _holder_of(fd))) from None
    if e.errno in _UNSUPPORTED:
      raise LockingUnsupportedError(
          f"The filesystem of {workdir} does not support file locks "
          f"({errno.errorcode.get(e.errno, e.errno)}: {e.strerror}), so jaxgen cannot "
          f"make sure that only one run uses this workdir. Use a workdir on a "
          f"filesystem with locks (local disk; NFS without 'nolock' and with lockd "
          f"running; Lustre mounted with -o flock), or set {NO_LOCK_ENV}=1 to run "
          f"without the lock at your own risk.") from e
    raise


def _holder_of(fd: int) -> dict:
  """The recorded holder, re-read briefly if it looks unwritten or stale (the
  holder writes its details just after locking; a killed one leaves old ones)."""
  for _ in range(10):
    _, kernel_pid = _test_lock(fd)
    info = _read_info(fd)
    if _plausible(info, kernel_pid):
      return info
    time.sleep(0.05)
  return _normal({"pid": kernel_pid or None})  # what the kernel says, if anything


def _plausible(info: dict, kernel_pid: int | None) -> bool:
  if not info.get("pid"):
    return False
  if info.get("host") == socket.gethostname():
    if kernel_pid and kernel_pid != info["pid"]:
      return False
    return not _dead_here(info)
  return True


def _dead_here(info: dict) -> bool:
  """The recorded process was on this host and no longer exists."""
  if info.get("host") != socket.gethostname():
    return False
  try:
    os.kill(int(info["pid"]), 0)
  except ProcessLookupError:
    return True
  except (OSError, ValueError, TypeError):
    return False
  return False


def _read_info(fd: int) -> dict:
  try:
    raw = os.pread(fd, 65536, 0)
    info = json.loads(raw.decode()) if raw.strip() else {}
  except (OSError, ValueError):
    info = {}
  return _normal(info if isinstance(info, dict) else {})


def _normal(info: dict) -> dict:
  keys = ("pid", "host", "start_time", "start_time_iso", "argv")
  return {**{k: None for k in keys}, **info}


# Linux struct flock on 64-bit platforms: short l_type, l_whence; off_t l_start,
# l_len; pid_t l_pid; padding.
_FLOCK = "hhqqi4x"
_HAS_GETLK = sys.platform.startswith("linux") and struct.calcsize("P") == 8


def _test_lock(fd: int) -> tuple[bool | None, int | None]:
  """(whether another process holds a lock on the file, its PID as the kernel says,
  0 if not visible), without taking a lock; (None, None) where this cannot be told."""
  if not _HAS_GETLK:
    return None, None
  try:
    arg = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    l_type, _, _, _, l_pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, arg))
  except OSError:
    return None, None
  if l_type == fcntl.F_UNLCK:
    return False, None
  return True, (l_pid if l_pid > 0 else 0)


def _same_file(fd: int, path: str) -> bool:
  try:
    a, b = os.fstat(fd), os.stat(path)
  except OSError:
    return False
  return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _refusal(workdir: str, info: dict, self_: bool = False) -> str:
  if self_:
    return (f"The workdir {workdir} is already locked by this process (PID "
            f"{info.get('pid')}); a run cannot lock its own workdir twice.")
  who = f"PID {info['pid']}" if info.get("pid") else "a process (details not recorded)"
  if info.get("host"):
    who += f" on host {info['host']}"
  if info.get("start_time"):
    try:
      started = datetime.datetime.fromtimestamp(float(info["start_time"]))
      ago = _ago(time.time() - float(info["start_time"]))
      who += f", started {started:%Y-%m-%d %H:%M:%S} ({ago})"
    except (TypeError, ValueError, OverflowError, OSError):
      pass
  if info.get("argv"):
    cmd = " ".join(shlex.join(str(a) for a in info["argv"]).split())  # one line
    who += f", command: {cmd if len(cmd) <= 300 else cmd[:297] + '...'}"
  pid = info.get("pid") or "PID"
  host = f" on {info['host']}" if info.get("host") else ""
  return (f"The workdir {workdir} is in use by another run: {who}. Wait for it to "
          f"finish, or use another --workdir; if that process is gone, the lock "
          f"goes with it (at once on a local disk, within about 90 s on NFS), so if "
          f"it persists check `ps -p {pid}`{host}; only if it is certainly not "
          f"running, remove {lock_path(workdir)}.")


def _ago(seconds: float) -> str:
  seconds = max(0.0, seconds)
  if seconds < 120:
    return f"{seconds:.0f} s ago"
  if seconds < 7200:
    return f"{seconds / 60:.0f} min ago"
  if seconds < 172800:
    return f"{seconds / 3600:.1f} h ago"
  return f"{seconds / 86400:.1f} days ago"
