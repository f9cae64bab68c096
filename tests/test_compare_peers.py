"""experiments/compare_peers.py without torch: its medians, ratios and table, a row's
alternating rounds against fake sides, and the exit status 2 with the install hint
when the peer python lacks torch."""
import importlib.util
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).parent.parent / "experiments" / "compare_peers.py"
HINT = "pip install -e '.[peers]'"


def _load():
  spec = importlib.util.spec_from_file_location("compare_peers", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)  # stdlib imports only: no jax, no torch
  return module


cp = _load()


def test_summarize_medians_and_ratios():
  # 8 images a round. jaxgen: 2, 1, 4 s -> 4, 8, 2 img/s, median 4.
  # peer: 4, 2, 8 s -> 2, 4, 1 img/s, median 2. Ratio 4 / 2 = 2; per round 2, 2, 2.
  out = cp.summarize([2.0, 1.0, 4.0], [4.0, 2.0, 8.0], images_per_round=8)
  assert out["jaxgen_images_per_sec"] == pytest.approx(4.0)
  assert out["peer_images_per_sec"] == pytest.approx(2.0)
  assert out["ratio"] == pytest.approx(2.0)
  assert out["paired_ratio"] == pytest.approx(2.0)
  assert out["jaxgen_rounds_images_per_sec"] == pytest.approx([4.0, 8.0, 2.0])


def test_summarize_even_rounds_and_unpaired_ratio():
  # 10 images. jaxgen: 1, 5 s -> 10, 2 img/s, median 6. peer: 2, 2 s -> 5, 5, median 5.
  # ratio 6 / 5 = 1.2; per round 10/5 = 2 and 2/5 = 0.4, median 1.2 as well.
  out = cp.summarize([1.0, 5.0], [2.0, 2.0], images_per_round=10)
  assert out["jaxgen_images_per_sec"] == pytest.approx(6.0)
  assert out["peer_images_per_sec"] == pytest.approx(5.0)
  assert out["ratio"] == pytest.approx(1.2)
  assert out["paired_ratio"] == pytest.approx(1.2)
  # A slower jaxgen gives a ratio below 1: 4 img/s against 8.
  assert cp.summarize([2.0], [1.0], 8)["ratio"] == pytest.approx(0.5)
  with pytest.raises(ValueError):
    cp.summarize([1.0], [1.0, 2.0], 8)


def test_params_note():
  assert cp.params_note(35_746_307, 35_746_307) == ""
  assert cp.params_note(100, 98) == ""  # 2% apart: agree
  assert cp.params_note(100, 90) == "parameter counts differ by 10.0%"


def test_format_table():
  row = {"row": "dcgan_train", "batch": 64, "jaxgen_params": 6342272,
         "peer_params": 6342272, "jaxgen_warmup_s": 25.18, "peer_warmup_s": 7.75,
         "jaxgen_images_per_sec": 9.8199, "peer_images_per_sec": 8.3774,
         "ratio": 9.8199 / 8.3774, "note": ""}
  lines = cp.format_table([row, {"row": "clip_image_tower", "note": "peer failed"}]
                          ).splitlines()
  assert lines[0].split()[:2] == ["row", "batch"]
  assert "jaxgen/peer" in lines[0]
  assert lines[1].split() == ["dcgan_train", "64", "6,342,272", "6,342,272", "25.18",
                              "7.75", "9.82", "8.38", "1.17"]
  assert lines[2].split() == ["clip_image_tower"] + ["-"] * 8 + ["peer", "failed"]


def _run(*args):
  return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                        text=True, timeout=60)


def test_peer_without_torch_exits_2_with_the_install_hint(tmp_path):
  # A python that cannot import torch, even where this one can: no site-packages.
  fake = tmp_path / "python"
  fake.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S -I "$@"\n')
  fake.chmod(0o755)
  out = _run(f"--peer_python={fake}", "--rows=dcgan_train,clip_image_tower")
  assert out.returncode == 2, out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
  assert "cannot import torch, transformers" in lines[0]
  assert HINT in lines[0] and "--peer_python" in lines[0]
  assert out.stdout == ""  # nothing was benchmarked


def test_missing_peer_python_exits_2(tmp_path):
  out = _run(f"--peer_python={tmp_path / 'nope'}", "--rows=dcgan_train")
  assert out.returncode == 2
  assert HINT in out.stderr and "does not run" in out.stderr


def test_unknown_row_is_a_usage_error():
  out = _run("--rows=dcgan_train,vae")
  assert out.returncode == 2
  assert "unknown vae" in out.stderr


class _FakeSide:
  """Answers bench_row's requests as a side would: each round takes ``seconds``."""

  def __init__(self, name, log, seconds, params, fail_in_round=None):
    self.name, self.log, self.seconds, self.params = name, log, seconds, params
    self.fail_in_round, self.rounds = fail_in_round, 0

  def request(self, request):
    self.log.append((self.name, request["op"]))
    if request["op"] == "setup":
      return {"ok": True, "params": self.params, "build_s": 0.1, "warmup_s": 0.2}
    if request["op"] == "round":
      if self.rounds == self.fail_in_round:
        return {"ok": False, "error": "boom"}
      self.rounds += 1
      return {"ok": True, "seconds": self.seconds}
    return {"ok": True}


def test_bench_row_alternates_the_sides_and_summarizes():
  log = []
  jaxgen = _FakeSide("jaxgen", log, 2.0, 1000)
  peer = _FakeSide("peer", log, 4.0, 1000)
  result = cp.bench_row("dcgan_train", jaxgen, peer, {}, rounds=3, iters=1, warmup=0)
  rounds = [name for name, op in log if op == "round"]
  assert rounds == ["jaxgen", "peer", "peer", "jaxgen", "jaxgen", "peer"]
  assert log[-2:] == [("jaxgen", "free"), ("peer", "free")]
  # 64 images a round: jaxgen 32 img/s, peer 16, twice as fast.
  assert result["jaxgen_images_per_sec"] == pytest.approx(32.0)
  assert result["ratio"] == pytest.approx(2.0) and result["note"] == ""
  assert result["jaxgen_rounds_s"] == [2.0] * 3 and result["peer_rounds_s"] == [4.0] * 3


def test_bench_row_reports_a_failed_round_and_frees_both_sides():
  log = []
  jaxgen = _FakeSide("jaxgen", log, 2.0, 1000)
  peer = _FakeSide("peer", log, 4.0, 1000, fail_in_round=1)
  result = cp.bench_row("dcgan_train", jaxgen, peer, {}, rounds=3, iters=1, warmup=0)
  assert result["note"] == "peer failed in round 1: boom"
  assert "ratio" not in result
  assert log[-2:] == [("jaxgen", "free"), ("peer", "free")]
