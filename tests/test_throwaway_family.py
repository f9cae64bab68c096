"""A family added from outside jaxgen, edits to no shared file: the test writes a
package with one trainer module (the short path, ``OneOptimizerTrainer``: a loss and
a sampler) and a config file in a temporary folder, trains it through ``python -m
jaxgen.main`` with the folder on PYTHONPATH and ``config.family`` its module path, and
holds the run to the conformance checks every jaxgen family passes."""
import os
import sys
import textwrap

import pytest

import conformance
from conftest import REPO, run_main

# A per-pixel Gaussian: each pixel's mean and log standard deviation are parameters,
# fitted by maximum likelihood; its samples are the mean plus noise. The family
# writes its network, loss, eval sums and sampler; the base does the rest (the
# optimiser, the EMA, generate, the picture of samples).
FAMILY = textwrap.dedent('''
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from jaxgen.families.base import OneOptimizerTrainer


    class PixelGaussian(nn.Module):
      shape: tuple

      @nn.compact
      def __call__(self, x):
        mean = self.param("mean", nn.initializers.constant(0.5), self.shape)
        log_std = self.param("log_std", nn.initializers.zeros, self.shape)
        return jnp.broadcast_to(mean, x.shape), jnp.broadcast_to(log_std, x.shape)


    class Trainer(OneOptimizerTrainer):
      def __init__(self, config, spec, stages=None):
        super().__init__(config, spec, stages)
        self.net = PixelGaussian(tuple(self.example_shape))

      def networks(self):
        return {"model": (self.net, (jnp.zeros((1, *self.example_shape)),), {})}

      def nll(self, params, x):  # per example, nats per pixel
        mean, log_std = self.net.apply({"params": params}, x)
        nll = 0.5 * ((x - mean) / jnp.exp(log_std)) ** 2 + log_std + 0.9189385
        return nll.mean((1, 2, 3))

      def loss(self, params, batch, rng, frozen):
        nll = self.nll(params, batch["image"]).mean()
        return nll, {"nll": nll}

      def eval_step(self, state, batch, rng, frozen=None):
        nll, mask = self.nll(state.ema_params, batch["image"]), batch["mask"]
        return {"count": mask.sum(), "nll": (nll * mask).sum()}

      def sample(self, params, rng, num, inputs=None, frozen=None):
        x = jnp.zeros((num, *self.example_shape))
        mean, log_std = self.net.apply({"params": params}, x)
        noise = jax.random.normal(rng, x.shape)
        return jnp.clip(mean + jnp.exp(log_std) * noise, 0.0, 1.0)
''')

CONFIG = textwrap.dedent('''
    """The throwaway family on MNIST-5k, from the shared blocks of jaxgen's configs."""
    from jaxgen import config_file

    common = config_file.module_beside({common!r}, "common")


    def get_config(arg=None):
      variants = common.parse_arg(arg, "pixel_gaussian_mnist", {{"tiny"}})
      c = common.config("throwaway.pixel_gaussian", data=common.mnist5k_data(),
                        optim=common.optim(ema_decay=0.9, learning_rate=1e-2),
                        train=common.train(), eval=common.evaluation(batch_size=50))
      if "tiny" in variants:
        c.train.update(common.tiny_train())
        c.optim.warmup_steps = 1
        c.eval.update(batch_size=4, num_examples=8)
      return c
''')


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory):
  root = tmp_path_factory.mktemp("throwaway")
  package = root / "throwaway"
  package.mkdir()
  (package / "__init__.py").write_text("")
  (package / "pixel_gaussian.py").write_text(FAMILY)
  config = root / "pixel_gaussian_mnist.py"
  config.write_text(CONFIG.format(common=os.path.join(REPO, "configs", "common.py")))
  env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(root),
                                                      os.environ.get("PYTHONPATH")]))}
  flags = [f"--config={config}:tiny", "--config.train.checkpoint_every=2",
           "--config.train.log_every=1"]
  workdir = str(root / "run")
  run_main(flags[0], f"--workdir={workdir}", *flags[1:], env=env)
  sys.path.insert(0, str(root))  # for the checks that rebuild the run in this process
  yield {"root": root, "env": env, "flags": flags, "workdir": workdir,
         "config": str(config)}
  sys.path.remove(str(root))


def _config(throwaway):
  from jaxgen import config_file
  return config_file.load(f"{throwaway['config']}:tiny")


def test_a_family_outside_jaxgen_trains_through_main(throwaway):
  conformance.check_run(throwaway["workdir"], _config(throwaway),
                        "throwaway.pixel_gaussian")


def test_its_resume_is_bitwise_and_its_eval_mode_repeats_the_evaluation(throwaway,
                                                                          tmp_path):
  conformance.check_resume_from_the_middle(throwaway["workdir"], throwaway["flags"],
                                           _config(throwaway), str(tmp_path / "resumed"),
                                           env=throwaway["env"])
  conformance.check_eval_mode(throwaway["workdir"], throwaway["flags"],
                              str(tmp_path / "eval"), env=throwaway["env"])


def test_its_summary_and_four_devices(throwaway, capsys):
  from jaxgen import stages
  conformance.check_summary(stages.run_config(throwaway["workdir"]), capsys)
  conformance.check_four_devices(throwaway["workdir"], _config(throwaway),
                                 env=throwaway["env"])


def test_its_fit_moves_towards_the_data(throwaway):
  """The per-pixel means move from 0.5 towards the digits' mean image (dark borders):
  the loss and the sampler are the family's, the gradient step is the base's."""
  import json
  with open(os.path.join(throwaway["workdir"], "metrics.jsonl")) as f:
    lines = [json.loads(line) for line in f]
  assert lines[-1]["loss"] < lines[0]["loss"]
