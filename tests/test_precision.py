"""The compute policy (config.compute): dtype per platform, float32 state, the
matmul precision, the random-number implementation, and their errors."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from jaxgen import loop_config, precision, train
from jaxgen.config_file import ConfigError


def test_auto_is_bfloat16_on_accelerators_and_float32_on_the_cpu():
  c = load_config("ddpm_mnist", "tiny")
  assert precision.resolve(c, "cpu").compute_dtype == jnp.float32
  for platform in ("gpu", "tpu"):
    assert precision.resolve(c, platform).compute_dtype == jnp.bfloat16
  # A family whose networks are float32 only: auto falls back, an explicit ask fails.
  assert precision.resolve(c, "gpu", dtypes=("float32",)).compute_dtype == jnp.float32
  c.compute.dtype = "bfloat16"
  with pytest.raises(ConfigError, match="computes in float32 only"):
    precision.resolve(c, "gpu", dtypes=("float32",))
  assert precision.resolve(c, "cpu").compute_dtype == jnp.bfloat16  # asked for


def test_bad_compute_fields_are_one_line_each_before_any_work():
  c = load_config("vae_mnist", "tiny")
  c.compute.update(dtype="fp8", matmul_precision="fast", prng_impl="mt19937")
  with pytest.raises(ConfigError) as e:
    loop_config.check(c)
  for field in ("dtype", "matmul_precision", "prng_impl"):
    assert f"config.compute.{field} must be one of" in str(e.value)
  with pytest.raises(KeyError, match="no field"):
    precision.block(dtyp="float32")


def test_float32_is_the_plain_apply_and_bfloat16_computes_in_bfloat16():
  import flax.linen as nn
  module = nn.Sequential([nn.Conv(8, (3, 3)), nn.gelu, nn.Dense(4)])
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), jnp.float32)
  variables = module.init(jax.random.key(0), x)
  np.testing.assert_array_equal(precision.Policy().apply(module, variables, x),
                                module.apply(variables, x))
  bf16 = precision.Policy(jnp.bfloat16)
  out = bf16.apply(module, variables, x)
  assert out.dtype == jnp.float32  # back to float32 for the loss
  ref = module.apply(variables, x)
  err = float(jnp.max(jnp.abs(out - ref)) / jnp.max(jnp.abs(ref)))
  assert 1e-4 < err < 3e-2, err  # rounded like bfloat16, not float32
  hlo = jax.jit(lambda v, x: bf16.apply(module, v, x)).lower(variables, x).as_text()
  assert "bf16" in hlo and "convolution" in hlo
  # Gradients with respect to the float32 parameters are float32.
  grads = jax.grad(lambda v: jnp.sum(bf16.apply(module, v, x)))(variables)
  assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}


def test_a_bfloat16_ddpm_step_keeps_float32_state_and_tracks_float32():
  runs = {}
  for dtype in ("float32", "bfloat16"):
    c = load_config("ddpm_mnist", "tiny")
    c.compute.dtype = dtype
    trainer = train.make_trainer(c)
    state = jax.jit(trainer.init_state)(jax.random.key(0))
    batch = {"image": jnp.asarray(np.random.default_rng(0).uniform(
        -1, 1, (8, 28, 28, 1)), jnp.float32)}
    new, metrics = jax.jit(trainer.train_step)(state, batch, jax.random.key(1))
    runs[dtype] = float(metrics["grad_norm"])  # (the zero-initialised output layer
    # makes the first loss the same in both)
    leaves = jax.tree.leaves((new.params, new.opt_state, new.ema_params))
    assert {x.dtype for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)} == {
        jnp.dtype(jnp.float32)}
  assert runs["bfloat16"] != runs["float32"]
  np.testing.assert_allclose(runs["bfloat16"], runs["float32"], rtol=0.05)


# Each family that computes in the policy's dtype, by a tiny config; a config's frozen
# stages (its STAGE_CONFIGS) get parameters that are shapes only: no stage run is trained.
FAMILIES = ["pix2pix_mnist", "cyclegan_mnist", "pixelcnn_mnist", "pixelcnnpp_cifar10",
            "vqvae_mnist", "dvae_mnist", "stylegan2_mnist", "latent_ddpm_mnist",
            "vqvae_prior_mnist"]


@pytest.mark.parametrize("name", FAMILIES)
def test_bfloat16_families_trace_bfloat16_networks_and_keep_float32_state(name):
  """Traced, never compiled: the train step's new state is float32 and most of its
  convolutions and matrix products are bfloat16."""
  from conftest import stage_configs
  from jaxgen import data, stages, trainers
  c = load_config(name, "tiny")
  family = trainers.family_class(c)
  assert precision.resolve(c, "gpu", family.compute_dtypes).compute_dtype == jnp.bfloat16
  c.compute.dtype = "bfloat16"
  if name.startswith("cyclegan"):
    c.cyclegan.styles_metrics = False  # its reference statistics are host work
  frozen_stages = {}
  for role, stage in stage_configs(name).items():
    sc = load_config(stage, "tiny")
    sc.compute.dtype = "bfloat16"
    st = stages.make_trainer(sc)
    params = st.stage_params(jax.eval_shape(st.init_state, jax.random.key(0)))
    frozen_stages[role] = stages.Stage(role, stage, st, params, 0, "")
  trainer = family(c, data.example_spec(c.data), frozen_stages)
  state = jax.eval_shape(trainer.init_state, jax.random.key(0))
  n = c.train.batch_size
  batch = {k: jax.ShapeDtypeStruct((n, *v.shape), v.dtype)
           for k, v in data.example_spec(c.data).items()}
  lowered = jax.jit(trainer.train_step).lower(state, batch, jax.random.key(1),
                                              stages.frozen_params(trainer.stages))
  new, _ = lowered.out_info  # the shapes jax.eval_shape would give
  assert {x.dtype for x in jax.tree.leaves(new) if jnp.issubdtype(x.dtype, jnp.floating)
          } == {jnp.dtype(jnp.float32)}
  ops = [line for line in lowered.as_text().splitlines()
         if "convolution" in line or "dot_general" in line]
  assert sum("bf16" in line for line in ops) > len(ops) / 2, (name, len(ops))


def test_a_backend_that_sums_bfloat16_in_bfloat16_is_named_when_bfloat16_is_chosen():
  """The probe predicts what a real network's bias gradient suffers: a conv layer's
  bias gradient through ``Policy.apply`` in bfloat16 against float32."""
  import flax.linen as nn
  assert precision.bias_gradient_error("float32") < 1e-5
  module = nn.Conv(4, (3, 3))
  x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (8, 28, 28, 1)), jnp.float32)
  variables = module.init(jax.random.key(0), x)

  def bias_grad(policy):
    return jax.jit(jax.grad(lambda v: jnp.sum(policy.apply(module, v, x))))(
        variables)["params"]["bias"]

  ref = bias_grad(precision.Policy())
  np.testing.assert_allclose(ref, 8 * 28 * 28, rtol=1e-6)  # d(sum)/d(bias), exactly
  real = float(jnp.max(jnp.abs(bias_grad(precision.Policy(jnp.bfloat16)) - ref)) /
               (8 * 28 * 28))
  probe = precision.bias_gradient_error("bfloat16")
  assert (probe > 0.01) == (real > 0.01), (probe, real)
  c = load_config("vae_mnist", "tiny")
  c.compute.dtype = "bfloat16"
  if probe > 0.01:  # XLA's CPU backend today: 96% off
    with pytest.warns(UserWarning, match="sums bfloat16 values in bfloat16"):
      precision.resolve(c)
  else:
    import warnings
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      precision.resolve(c)


def test_the_matmul_precision_reaches_the_traced_programs():
  a = jnp.ones((4, 4))
  with precision.matmul_context(precision.Policy(matmul_precision="highest")):
    text = jax.jit(jnp.dot).lower(a, a).as_text()
  assert "HIGHEST" in text
  assert "HIGHEST" not in jax.jit(jnp.dot).lower(a, a).as_text()


def test_the_prng_implementation_is_a_config_choice_that_a_resume_keeps(tmp_path):
  c = load_config("vae_mnist", "tiny")
  c.compute.prng_impl = "rbg"
  c.train.update(num_steps=2, sample_every=0)
  c.eval.metrics = ()
  keys = train.stages.run_keys(c)
  assert "rbg" in str(jax.random.key_impl(keys["step"]))
  wd = str(tmp_path / "run")
  train.train(c, wd)
  other = load_config("vae_mnist", "tiny")
  other.train.update(num_steps=4, sample_every=0)
  other.eval.metrics = ()
  with pytest.raises(ConfigError, match="trained with compute.prng_impl=rbg"):
    train.train(other, wd)
  c.train.num_steps = 4
  train.train(c, wd)  # the same implementation resumes
  assert os.path.isdir(os.path.join(wd, "checkpoints", "4"))


def test_importing_jaxgen_asks_for_ynn_dot_fusions_unless_told_otherwise():
  import subprocess
  import sys
  show = "import os, jaxgen; print(os.environ.get('XLA_FLAGS', ''))"

  def flags(**env):
    full = {k: v for k, v in os.environ.items() if k != "JAXGEN_YNN_FUSION"}
    full["XLA_FLAGS"] = " ".join(f for f in full.get("XLA_FLAGS", "").split()
                                 if "ynn_fusion_type" not in f)  # this process's ask
    return subprocess.run([sys.executable, "-c", show], env={**full, **env},
                          capture_output=True, text=True)

  assert "--xla_cpu_experimental_ynn_fusion_type=dot" in flags().stdout.split()
  assert "ynn_fusion_type=dot,eltwise,reduce" in flags(JAXGEN_YNN_FUSION="all").stdout
  assert "ynn_fusion_type" not in flags(JAXGEN_YNN_FUSION="0").stdout
  mine = flags(XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type=reduce").stdout
  assert mine.strip() == "--xla_cpu_experimental_ynn_fusion_type=reduce"  # theirs wins
  bad = flags(JAXGEN_YNN_FUSION="yes")
  assert bad.returncode != 0 and "JAXGEN_YNN_FUSION='yes': use one of" in bad.stderr
