"""Data parallelism: 4 fake CPU devices give the step that 1 device gives."""
import os
import subprocess
import sys
import textwrap

from conftest import REPO

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    assert jax.device_count() == 4, jax.devices()
    from jaxgen import config_file, data, sharding, train
    c = config_file.load("configs/vae_mnist.py:tiny")
    c.train.batch_size = 8
    trainer = train.make_trainer(c)
    loader = data.Loader(data.get_source(c.data, "train"), c.data, 8, 0)
    batches = [next(loader) for _ in range(2)]

    def run(devices):
      mesh = sharding.make_mesh(devices)
      repl, bsh = sharding.replicated(mesh), sharding.batch_sharding(mesh)
      state = jax.jit(trainer.init_state, out_shardings=repl)(jax.random.key(0))
      step = jax.jit(lambda s, b: trainer.train_step(s, b, jax.random.key(1)),
                     in_shardings=(repl, bsh), out_shardings=(repl, repl),
                     donate_argnums=0)
      for b in batches:
        put = sharding.put_batch(b, mesh)
        assert len(put["image"].sharding.device_set) == len(devices)
        state, metrics = step(state, put)
      return jax.device_get(state.params), jax.device_get(metrics)

    p1, m1 = run(jax.devices()[:1])
    p4, m4 = run(jax.devices())
    worst = max(float(np.max(np.abs(a - b))) for a, b in
                zip(jax.tree.leaves(p1), jax.tree.leaves(p4)))
    print("max abs param difference", worst)
    assert worst < 1e-5, worst
    np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-5)

    try:
      sharding.check_batch_size(6, sharding.make_mesh())
      raise SystemExit("no error for a batch of 6 on 4 devices")
    except ValueError as e:
      assert "not divisible by the number of devices (4)" in str(e), e
    print("OK")
""")


def test_four_devices_match_one_device():
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-4000:]
  assert out.stdout.strip().endswith("OK")
