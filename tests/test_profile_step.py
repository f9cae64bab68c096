"""experiments/profile_step.py: the classes of a compiled program's thunks, and of
PyTorch's operators, on programs small enough to check by hand."""
import jax
import jax.numpy as jnp
import numpy as np

from conftest import load_module

profile_step = load_module("experiments/profile_step.py")


def _program():
  def f(x, w, m):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    z = jnp.tanh(y).reshape(x.shape[0], -1) @ m
    return jnp.sum(z * z)
  rng = np.random.default_rng(0)
  args = (rng.normal(size=(4, 16, 16, 8)), rng.normal(size=(3, 3, 8, 8)),
          rng.normal(size=(16 * 16 * 8, 32)))
  args = [jnp.asarray(a, jnp.float32) for a in args]
  return jax.jit(jax.grad(f, argnums=(1, 2))).lower(*args).compile(), args


def test_every_thunk_of_a_conv_and_matmul_step_is_classed_by_what_it_computes():
  compiled, args = _program()
  classes = profile_step.hlo_classes(compiled.as_text())
  assert "convolution" in classes.values() and "matmul" in classes.values()

  def run(iters):
    for _ in range(iters):
      jax.block_until_ready(compiled(*args))

  run(1)
  out = profile_step.profile_compiled(run, compiled, iters=2)
  assert out["unclassified"] == []  # each event named a thunk of the program
  assert out["ms"]["convolution"] > 0 and out["ms"]["matmul"] > 0
  assert out["ms"]["other"] == 0
  # The thunks ran inside the timed loop: their sum is at most the cores' time.
  import os
  assert sum(out["ms"].values()) <= out["wall_ms"] * os.cpu_count() * 1.05
  assert out["gflop_per_step"] > 0


def test_pytorch_operators_are_classed_by_their_aten_names():
  expect = {"aten::mkldnn_convolution": "convolution",
            "aten::convolution_backward": "convolution",
            "aten::addmm": "matmul", "aten::bmm": "matmul",
            "aten::native_group_norm": "normalisation",
            "aten::native_batch_norm_backward": "normalisation",
            "aten::_foreach_add_": "optimizer", "aten::copy_": "copy/layout",
            "aten::silu": "elementwise/reduce", "aten::sum": "elementwise/reduce"}
  assert {k: profile_step.torch_class(k) for k in expect} == expect
