"""StyleGAN2 training parity with NVlabs' stylegan2-ada-pytorch: the losses and the
gradient of every parameter of each phase (Gmain, Greg with path length, Dmain, Dreg
with R1) against the reference's ``StyleGAN2Loss.accumulate_gradients``, for the
``orig`` and ``resnet`` discriminators, and a conditional pair (3 classes: G's label
embedding, the ``resnet`` D's label mapping and projection head) on the reference's
real and generated labels.

The fixture (tests/fixtures/stylegan2_training.npz and the two pickles beside it,
written by tests/fixtures/make_stylegan2_training_fixture.py in the reference venv)
holds the reference's initial networks in the official pickle format (loaded here
through jaxgen/weights/stylegan2.py), the random draws it made (style-mixing
crossover and second z, the synthesis noise, the path-length noise), and its losses,
buffers and gradients. jaxgen's phase losses (the trainer's ``g_main_loss``,
``g_pl_loss``, ``d_main_loss``, ``d_r1_loss``, which ``train_step`` calls) are fed
those draws."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from jaxgen.weights import stylegan2 as sp
from jaxgen.families.stylegan2 import trainer as trainer_mod

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
ARCHS = ("orig", "resnet", "cond")


@pytest.fixture(scope="module")
def ref():
  with np.load(os.path.join(HERE, "stylegan2_training.npz")) as f:
    return dict(f)


def _trainer(arch):
  c = load_config("stylegan2_mnist", "tiny")
  cond = arch == "cond"
  c.model.update(resolution=16, z_dim=16, w_dim=16, mapping_layers=2,
                 mapping_lr_multiplier=0.01, channel_base=128, channel_max=16,
                 d_architecture="resnet" if cond else arch, mbstd_group_size=2,
                 conv_clamp=256.0, d_mapping_layers=2 if cond else 8,
                 num_classes=3 if cond else 0)
  c.stylegan2.update(style_mixing_prob=0.9, r1_gamma=1.0, pl_weight=2.0,
                     pl_batch_shrink=2, pl_decay=0.01, augment="")
  c.train.batch_size = 4
  spec = {"image": jax.ShapeDtypeStruct((16, 16, 1), jnp.float32)}
  if cond:
    spec["label"] = jax.ShapeDtypeStruct((), jnp.int32)
  tr = trainer_mod.StyleGAN2Trainer(c, spec)
  nets = sp.load_network_pkl(os.path.join(HERE, f"stylegan2_training_{arch}.pkl"))
  g, g_vars = sp.generator_from_pickle(nets["G"])
  d, d_vars = sp.discriminator_from_pickle(nets["D"])
  # The trainer's networks are the pickled ones (same hyper-parameters; the pickle
  # names the label map's width, which the trainer leaves at its default, the 4x4
  # block's 16 channels).
  if cond:
    assert d.cmap_dim == 16 and tr.discriminator.cmap_dim is None
    d = d.clone(cmap_dim=None)
  assert g == tr.generator and d == tr.discriminator, (g, tr.generator)
  to_j = lambda t: jax.tree.map(jnp.asarray, t)
  return tr, to_j(g_vars["params"]), to_j(g_vars["buffers"]), to_j(d_vars["params"])


def _flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = np.asarray(v)
  return out


def _mix(ref, key):
  return (jnp.asarray(ref[f"{key}/pass0/cutoff"]), jnp.asarray(ref[f"{key}/pass0/z2"]))


def compare_grads(grads, ref, key, rtol=2e-4):
  """Every parameter's gradient against the reference's, each relative to the
  largest of its entries; returns {name: (max abs error, relative error)}."""
  ours = _flat(grads)
  theirs = {k[len(key) + 6:]: v for k, v in ref.items()
            if k.startswith(f"{key}/grad/")}
  assert sorted(ours) == sorted(theirs), set(ours) ^ set(theirs)
  errors = {}
  for name, g_ref in theirs.items():
    err = float(np.max(np.abs(ours[name] - g_ref)))
    scale = float(np.max(np.abs(g_ref)))
    errors[name] = (err, err / max(scale, 1e-30))
    assert err <= rtol * scale + 1e-7, (key, name, err, scale)
  return errors


def phase_grads(tr, gp, buffers, dp, ref, arch, phase):
  """(loss, aux, gradients) of jaxgen's phase loss on the reference's draws."""
  key = f"{arch}/{phase}"
  z = jnp.asarray(ref["z"])
  real = jnp.asarray(ref["real"])
  # the labels as the reference got them (one-hot), None for unconditional networks
  c_real = jnp.asarray(ref["cond/real_c"]) if arch == "cond" else None
  c = (lambda i: jnp.asarray(ref["cond/gen_c"][i])) if arch == "cond" else (
      lambda i: None)
  rng = jax.random.key(0)  # unused where the draws are given; no augmentation
  if phase == "Gmain":
    f = lambda p: tr.g_main_loss(p, dp, buffers, z[0], c(0), 0.0, rng,
                                 mix=_mix(ref, key),
                                 noise_bank=jnp.asarray(ref[f"{key}/pass0/noise"]))
    return (*jax.jit(jax.value_and_grad(f, has_aux=True))(gp),)
  if phase == "Greg":
    f = lambda p: tr.g_pl_loss(p, buffers, jnp.float32(0.3), z[1, :2],
                               None if c(1) is None else c(1)[:2], rng,
                               mix=_mix(ref, key),
                               noise_bank=jnp.asarray(ref[f"{key}/pass0/noise"]),
                               pl_noise=jnp.asarray(ref[f"{key}/pl_noise"]))
    return (*jax.jit(jax.value_and_grad(f, has_aux=True))(gp),)
  if phase == "Dmain":
    fake, _, new_buffers = tr.run_g(gp, buffers, z[2], c(2), rng, _mix(ref, key),
                                    jnp.asarray(ref[f"{key}/pass0/noise"]))
    f = lambda p: tr.d_main_loss(p, fake, c(2), real, c_real, 0.0, rng)
    (loss, aux), grads = jax.jit(jax.value_and_grad(f, has_aux=True))(dp)
    return (loss, (new_buffers, aux)), grads
  f = lambda p: tr.d_r1_loss(p, real, c_real, 0.0, rng)
  return (*jax.jit(jax.value_and_grad(f, has_aux=True))(dp),)


@pytest.mark.parametrize("arch", ARCHS)
def test_phase_losses_and_gradients_match_nvlabs(ref, arch):
  tr, gp, buffers, dp = _trainer(arch)
  stat = lambda phase, name: ref[f"{arch}/{phase}/stat/{name}"]

  (loss, (new_buffers, logits)), grads = phase_grads(tr, gp, buffers, dp, ref, arch,
                                                     "Gmain")
  np.testing.assert_allclose(np.asarray(logits),
                             stat("Gmain", "Loss/scores/fake")[:, 0], rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(float(loss), stat("Gmain", "Loss/G/loss").mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(np.asarray(new_buffers["mapping"]["w_avg"]),
                             ref[f"{arch}/Gmain/w_avg"], rtol=1e-5, atol=1e-6)
  compare_grads(grads, ref, f"{arch}/Gmain")

  (loss, (_, pl_mean, penalty)), grads = phase_grads(tr, gp, buffers, dp, ref, arch,
                                                     "Greg")
  np.testing.assert_allclose(float(penalty), stat("Greg", "Loss/pl_penalty").mean(),
                             rtol=1e-4)
  np.testing.assert_allclose(float(loss), stat("Greg", "Loss/G/reg").mean(), rtol=1e-4)
  np.testing.assert_allclose(float(pl_mean), float(ref[f"{arch}/Greg/pl_mean"]),
                             rtol=1e-5)
  compare_grads(grads, ref, f"{arch}/Greg")

  (loss, (_, (real_logits, fake_logits))), grads = phase_grads(
      tr, gp, buffers, dp, ref, arch, "Dmain")
  np.testing.assert_allclose(np.asarray(fake_logits),
                             stat("Dmain", "Loss/scores/fake")[:, 0], rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(np.asarray(real_logits),
                             stat("Dmain", "Loss/scores/real")[:, 0], rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(float(loss), stat("Dmain", "Loss/D/loss").mean(),
                             rtol=1e-5)
  compare_grads(grads, ref, f"{arch}/Dmain")

  (loss, (penalty, _)), grads = phase_grads(tr, gp, buffers, dp, ref, arch, "Dreg")
  np.testing.assert_allclose(float(penalty), stat("Dreg", "Loss/r1_penalty").mean(),
                             rtol=1e-4)
  np.testing.assert_allclose(float(loss), stat("Dreg", "Loss/D/reg").mean(), rtol=1e-4)
  compare_grads(grads, ref, f"{arch}/Dreg")


def test_fixture_exercises_every_term(ref):
  """Style mixing happened in every generator pass, and each phase's penalty and
  gradients are far from zero (so that a broken term fails the comparison), except
  the ones that are zero by construction: the toRGB biases in Greg (an image offset
  does not change J) and the epilogue biases in Dreg (leaky ReLU is piecewise linear,
  so they do not move grad_x D)."""
  structural = {"Greg": ("torgb.bias",), "Dreg": ("b4.conv.bias", "b4.fc.bias",
                                                  "b4.out.bias")}
  for arch in ARCHS:
    for phase in ("Gmain", "Greg", "Dmain"):
      assert int(ref[f"{arch}/{phase}/pass0/cutoff"]) < 6
    assert ref[f"{arch}/Greg/stat/Loss/pl_penalty"].mean() > 1e-3
    # (the conditional D's logit is a projection on its 16-wide label map, which
    # makes it less sensitive to the image: R1 about 1e-4)
    assert ref[f"{arch}/Dreg/stat/Loss/r1_penalty"].mean() > (
        3e-5 if arch == "cond" else 1e-3)
    for phase in ("Gmain", "Greg", "Dmain", "Dreg"):
      for k, v in ref.items():
        if k.startswith(f"{arch}/{phase}/grad/"):
          zero = k.endswith(structural.get(phase, ("-",)))
          assert (np.abs(v).max() == 0) == zero, (k, np.abs(v).max())
