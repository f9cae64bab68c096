"""Batches loaded and placed on the devices ahead of the step that needs them.

A background thread reads, preprocesses and places (``place``, e.g.
``sharding.put_batch``) up to ``depth`` batches ahead, in order, so that the input
pipeline overlaps the device's work; the consumer keeps the time it spent waiting
(``wait_seconds``), from which the loop reports the share of step time lost to input.
"""
from __future__ import annotations

import queue
import threading
import time

_BATCH, _END, _ERROR = range(3)


class Prefetcher:
  """An iterator over ``place(b)`` for each ``b`` of ``batches``, filled by a thread.

  An exception in the thread is raised in the consumer at the batch where it
  happened. ``close()`` stops the thread (it is also a daemon, so a crash of the
  consumer never hangs the process).
  """

  def __init__(self, batches, place, depth: int = 2):
    if depth < 1:
      raise ValueError(f"Prefetch depth must be at least 1, got {depth}.")
    self.wait_seconds = 0.0
    self._queue = queue.Queue(maxsize=depth)
    self._closed = threading.Event()
    self._thread = threading.Thread(target=self._fill, args=(iter(batches), place),
                                    name="jaxgen-prefetch", daemon=True)
    self._thread.start()

  def _put(self, item) -> bool:
    """Put ``item`` unless closed first; whether it was put."""
    while not self._closed.is_set():
      try:
        self._queue.put(item, timeout=0.05)
        return True
      except queue.Full:
        continue
    return False

  def _fill(self, batches, place):
    try:
      for batch in batches:
        if not self._put((_BATCH, place(batch))):
          return
    except BaseException as e:  # handed to the consumer, raised there
      self._put((_ERROR, e))
      return
    self._put((_END, None))

  def __iter__(self):
    return self

  def __next__(self):
    if self._closed.is_set():
      raise StopIteration
    t = time.perf_counter()
    kind, value = self._queue.get()
    self.wait_seconds += time.perf_counter() - t
    if kind == _ERROR:
      self.close()
      raise value
    if kind == _END:
      self.close()
      raise StopIteration
    return value

  def close(self):
    self._closed.set()
    self._thread.join(timeout=10)
