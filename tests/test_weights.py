"""Weights files: download into the cache, checksums (published or pinned on first
download), clear errors for missing and corrupt files. Downloads use file:// URLs."""
import hashlib

import pytest

from jaxgen import weights


@pytest.fixture
def known(tmp_path, monkeypatch):
  """A registry entry per checksum kind, served from a local 'remote' file."""
  remote = tmp_path / "remote.bin"
  remote.write_bytes(b"weights" * 1000)
  digest = hashlib.sha256(remote.read_bytes()).hexdigest()
  cache = tmp_path / "cache"
  monkeypatch.setenv("JAXGEN_CACHE", str(cache))
  monkeypatch.setitem(weights.KNOWN, "full", weights.KnownFile(
      "full.bin", remote.as_uri(), digest, "test weights"))
  monkeypatch.setitem(weights.KNOWN, "prefix", weights.KnownFile(
      "prefix.bin", remote.as_uri(), digest[:8], "test weights"))
  monkeypatch.setitem(weights.KNOWN, "unpinned", weights.KnownFile(
      "unpinned.bin", remote.as_uri(), None, "test weights"))
  monkeypatch.setitem(weights.KNOWN, "offline", weights.KnownFile(
      "offline.bin", (tmp_path / "nowhere.bin").as_uri(), digest, "test weights"))
  return remote, cache


@pytest.mark.parametrize("name", ["full", "prefix", "unpinned"])
def test_download_then_cache(known, name):
  remote, cache = known
  path = weights.resolve(name)
  assert path == cache / f"{name}.bin" and path.read_bytes() == remote.read_bytes()
  remote.unlink()  # the second call must not download
  assert weights.resolve(name) == path
  assert not list(cache.glob("*.part"))


@pytest.mark.parametrize("name", ["full", "unpinned"])
def test_corrupt_cached_file_is_an_error_naming_the_fix(known, name):
  path = weights.resolve(name)  # "unpinned" pins the first download's digest here
  path.write_bytes(path.read_bytes()[:100])  # truncated
  with pytest.raises(weights.WeightsError, match="corrupt or truncated.*Delete it"):
    weights.resolve(name)


def test_bad_download_leaves_nothing_behind(known, monkeypatch):
  remote, cache = known
  remote.write_bytes(b"something else")
  with pytest.raises(weights.WeightsError, match="SHA-256"):
    weights.resolve("full")
  assert not cache.exists() or not any(cache.iterdir())


def test_missing_file_says_where_to_put_it(known):
  _, cache = known
  with pytest.raises(weights.WeightsError) as err:
    weights.resolve("offline")
  message = str(err.value)
  assert "download failed" in message and str(cache / "offline.bin") in message
  assert "--weights" in message
  with pytest.raises(weights.WeightsError, match="downloading is disabled"):
    weights.resolve("full", download=False)


def test_explicit_path(known, tmp_path):
  other = tmp_path / "mine.bin"
  other.write_bytes(b"other weights")
  assert weights.resolve("full", other) == other  # any file of the same format
  with pytest.raises(weights.WeightsError, match="does not exist"):
    weights.resolve("full", tmp_path / "missing.bin")
  with pytest.raises(KeyError, match="Unknown weights"):
    weights.resolve("resnet")
