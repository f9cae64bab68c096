"""The workdir lock: one run per workdir, refused at once from another process, gone
with its holder (SIGKILL included), skippable by JAXGEN_NO_LOCK with a warning."""
import errno
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from jaxgen import workdir_lock
from jaxgen.workdir_lock import (LockingUnsupportedError, WorkdirLock, WorkdirLockError,
                                 WorkdirLockedError, WorkdirLockWarning, holder)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A separate process (fcntl locks are per process): "hold" locks and waits for its
# stdin to close; "try" reports whether it got the lock.
_CHILD = r"""
import sys
from jaxgen.workdir_lock import WorkdirLock, WorkdirLockedError
mode, workdir = sys.argv[1], sys.argv[2]
if mode == "hold":
  lock = WorkdirLock(workdir)
  lock.acquire()
  print("LOCKED", flush=True)
  sys.stdin.read()
else:
  try:
    with WorkdirLock(workdir):
      print("ACQUIRED", flush=True)
  except WorkdirLockedError as e:
    print("REFUSED", e, flush=True)
"""


def _env():
  env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
  env.pop(workdir_lock.NO_LOCK_ENV, None)
  return env


@pytest.fixture
def spawn_holder():
  procs = []

  def start(workdir):
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, "hold", str(workdir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=_env())
    procs.append(proc)
    assert proc.stdout.readline().strip() == "LOCKED"
    return proc

  yield start
  for proc in procs:
    if proc.poll() is None:
      proc.kill()
    proc.wait()


def _try_in_child(workdir) -> str:
  out = subprocess.run([sys.executable, "-c", _CHILD, "try", str(workdir)],
                       capture_output=True, text=True, env=_env(), timeout=30)
  assert out.returncode == 0, out.stderr
  return out.stdout.strip()


def test_another_process_is_refused_at_once_naming_the_holder(tmp_path, spawn_holder):
  workdir = tmp_path / "w"
  proc = spawn_holder(workdir)  # creates the workdir
  t0 = time.perf_counter()
  with pytest.raises(WorkdirLockedError) as err:
    with WorkdirLock(str(workdir)):
      pytest.fail("took a lock another process holds")
  assert time.perf_counter() - t0 < 1.0  # no waiting
  msg = str(err.value)
  assert isinstance(err.value, RuntimeError)
  assert f"PID {proc.pid}" in msg and socket.gethostname() in msg
  assert "started" in msg and "-c" in msg and "another --workdir" in msg
  assert "\n" not in msg
  info = holder(str(workdir))
  assert info["pid"] == proc.pid and info["host"] == socket.gethostname()
  assert abs(info["start_time"] - time.time()) < 60


def test_sigkilled_holder_leaves_no_lock(tmp_path, spawn_holder):
  workdir = tmp_path / "w"
  proc = spawn_holder(workdir)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert os.path.getsize(workdir / ".lock") > 0  # its details are still in the file
  assert holder(str(workdir)) is None  # ... but nobody holds the lock
  with WorkdirLock(str(workdir)) as lock:
    assert lock.locked and holder(str(workdir))["pid"] == os.getpid()


def test_clean_release_and_same_process(tmp_path):
  workdir = str(tmp_path / "new" / "w")  # created on demand
  with WorkdirLock(workdir) as lock:
    assert os.path.isdir(workdir) and lock.info["pid"] == os.getpid()
    refused = _try_in_child(workdir)
    assert refused.startswith("REFUSED") and f"PID {os.getpid()}" in refused
    # A second lock in this process is refused without dropping the first (POSIX
    # locks drop when any descriptor of the file closes), and so is holder().
    with pytest.raises(WorkdirLockedError, match="this process"):
      WorkdirLock(workdir).acquire()
    assert holder(workdir)["pid"] == os.getpid()
    assert _try_in_child(workdir).startswith("REFUSED")
  assert not lock.locked
  assert _try_in_child(workdir) == "ACQUIRED"  # before holder(), whose close() would
  assert holder(workdir) is None               # drop a lock this process leaked
  assert os.path.exists(os.path.join(workdir, ".lock"))  # left behind, harmless
  with WorkdirLock(workdir):  # again in this process
    pass


def test_env_var_skips_the_lock_with_a_warning(tmp_path, spawn_holder, monkeypatch):
  workdir = tmp_path / "w"
  spawn_holder(workdir)
  monkeypatch.setenv(workdir_lock.NO_LOCK_ENV, "1")
  with pytest.warns(WorkdirLockWarning, match="JAXGEN_NO_LOCK"):
    with WorkdirLock(str(workdir)) as lock:
      assert not lock.locked
  monkeypatch.setenv(workdir_lock.NO_LOCK_ENV, "0")  # "0" does not skip
  with pytest.raises(WorkdirLockedError):
    WorkdirLock(str(workdir)).acquire()


def test_disabled_does_nothing(tmp_path, recwarn):
  workdir = tmp_path / "w"
  with WorkdirLock(str(workdir), enabled=False) as lock:
    assert not lock.locked
  assert not workdir.exists() and not recwarn.list


def _in_unprivileged_child(fn) -> str:
  """fn()'s result in a forked child that runs as nobody when we are root (root
  ignores permissions)."""
  read, write = os.pipe()
  pid = os.fork()
  if pid == 0:  # the child
    try:
      os.close(read)
      if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)
      result = fn()
    except BaseException as e:  # anything goes back to the test
      result = f"{type(e).__name__}: {e}"
    os.write(write, result.encode())
    os._exit(0)
  os.close(write)
  with os.fdopen(read) as f:
    out = f.read()
  os.waitpid(pid, 0)
  return out


def test_unwritable_workdir_is_a_clear_error(tmp_path):
  top = tempfile.mkdtemp()  # outside pytest's 0700 tree, so nobody can enter it
  try:
    os.chmod(top, 0o755)
    readonly = os.path.join(top, "ro")
    os.mkdir(readonly, 0o555)

    def attempt(workdir):
      def fn():
        try:
          WorkdirLock(workdir).acquire()
          return "ACQUIRED"
        except WorkdirLockError as e:
          return f"{type(e).__name__}: {e}"
      return fn

    for workdir in (readonly, os.path.join(readonly, "sub")):
      out = _in_unprivileged_child(attempt(workdir))
      assert out.startswith("WorkdirLockError: Cannot create the lock file"), out
      assert "writable" in out and "--workdir" in out
  finally:
    shutil.rmtree(top)
  # A workdir under a regular file cannot be created either.
  (tmp_path / "file").write_text("")
  with pytest.raises(WorkdirLockError, match="writable directory"):
    WorkdirLock(str(tmp_path / "file" / "w")).acquire()


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS])
def test_filesystem_without_locks(tmp_path, monkeypatch, code):
  def refuse(*args):
    raise OSError(code, os.strerror(code))

  monkeypatch.setattr(fcntl, "lockf", refuse)
  with pytest.raises(LockingUnsupportedError) as err:
    WorkdirLock(str(tmp_path / "w")).acquire()
  assert "does not support file locks" in str(err.value)
  assert "JAXGEN_NO_LOCK=1" in str(err.value)
  monkeypatch.setenv(workdir_lock.NO_LOCK_ENV, "1")
  with pytest.warns(WorkdirLockWarning):
    with WorkdirLock(str(tmp_path / "w")):
      pass
