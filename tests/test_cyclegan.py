"""CycleGAN: the paper's sizes, the image pool against a re-implementation of junyanz
util/image_pool.py, one step's losses recomputed from the paper's formulas, the
styles evaluator on the ground truth and on hand-made translations (content against
content and style), F(b) read against b's label per background, and the errors for
paired data."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from jaxgen import data
from jaxgen.families.cyclegan.evaluators import Styles
from jaxgen.data.mnist5k_derived import restyle, styles_ground_truth
from jaxgen.families.cyclegan import trainer as cyclegan
from jaxgen.families.base import count_params
from jaxgen.families.cyclegan.trainer import CycleGANTrainer


def test_paper_counts():
  s = jax.ShapeDtypeStruct((256, 256, 3), np.float32)
  trainer = CycleGANTrainer(load_config("cyclegan_horse2zebra", "paper"),
                            {"domain_a": s, "domain_b": s})
  counts = {name: count_params(m, *a, **k) for name, (m, a, k) in
            trainer.networks().items()}
  assert counts == {"generator_ab": 11_378_179, "generator_ba": 11_378_179,
                    "discriminator_a": 2_764_737, "discriminator_b": 2_764_737}


class ReferencePool:
  """junyanz util/image_pool.py's ImagePool, re-written in plain Python lists, with
  its two random calls (random.uniform(0, 1), random.randint(0, size - 1)) answered
  from given streams."""

  def __init__(self, size):
    self.size, self.images = size, []

  def query(self, images, uniforms, ids):
    out = []
    for image, p, rid in zip(images, uniforms, ids):
      if len(self.images) < self.size:
        self.images.append(image)
        out.append(image)
      elif p > 0.5:
        out.append(self.images[rid])
        self.images[rid] = image
      else:
        out.append(image)
    return np.stack(out)


def test_image_pool_is_the_references_rule():
  size, n = 5, 3
  ref = ReferencePool(size)
  pool, count = jnp.zeros((size, 2, 2, 1)), jnp.zeros((), jnp.int32)
  query = jax.jit(cyclegan.image_pool_query)
  from_pool = 0
  for step in range(40):
    images = np.full((n, 2, 2, 1), step * 10.0, np.float32) + np.arange(n)[:, None,
                                                                         None, None]
    key = jax.random.key(step)
    k_u, k_id = jax.random.split(key)  # the draws image_pool_query documents
    u = np.asarray(jax.random.uniform(k_u, (n,)))
    ids = np.asarray(jax.random.randint(k_id, (n,), 0, size))
    want = ref.query(list(images), u, ids)
    got, pool, count = query(pool, count, jnp.asarray(images), key)
    np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_array_equal(np.asarray(pool)[:len(ref.images)],
                                  np.stack(ref.images))
    assert int(count) == len(ref.images)
    from_pool += int((np.asarray(got) != images).any((1, 2, 3)).sum())
  assert int(count) == size
  # once full, about half the returned images are older ones: 40 * 3 - 5 draws
  assert 0.35 < from_pool / (40 * n - size) < 0.65


def test_one_step_losses_are_the_papers():
  """g_loss = LSGAN(D_B(G(a)), 1) + LSGAN(D_A(F(b)), 1) + 10 |F(G(a)) - a| +
  10 |G(F(b)) - b| + 5 |G(b) - b| + 5 |F(a) - a|, and each D loss
  0.5 (MSE(D(real), 1) + MSE(D(fake), 0)) on this step's fakes (the pool is filling),
  recomputed here with the networks applied directly; the pools take the fakes."""
  config = load_config("cyclegan_mnist", "tiny")
  config.cyclegan.styles_metrics = False  # (no eval here: skips the reference features)
  trainer = CycleGANTrainer(config, data.example_spec(config.data))
  state = jax.jit(trainer.init_state)(jax.random.key(0))
  loader = data.Loader(data.get_source(config.data, "train"), config.data, 2, 0)
  batch = {k: jnp.asarray(v) for k, v in next(loader).items()}
  new, m = jax.jit(trainer.train_step)(state, batch, jax.random.key(1))
  a, b, p = batch["domain_a"], batch["domain_b"], state.params

  @jax.jit
  def reference(p):
    G = lambda x: trainer.g_ab.apply({"params": p["generator_ab"]}, x)
    F = lambda x: trainer.g_ba.apply({"params": p["generator_ba"]}, x)
    D = lambda name, x: trainer.d.apply({"params": p[name]}, x)
    mse = lambda x, t: jnp.mean((x - t) ** 2)
    l1 = lambda x, y: jnp.mean(jnp.abs(x - y))
    fb, fa = G(a), F(b)
    g = (mse(D("discriminator_b", fb), 1) + mse(D("discriminator_a", fa), 1)
         + 10 * l1(F(fb), a) + 10 * l1(G(fa), b) + 5 * l1(G(b), b) + 5 * l1(F(a), a))
    d_b = 0.5 * (mse(D("discriminator_b", b), 1) + mse(D("discriminator_b", fb), 0))
    d_a = 0.5 * (mse(D("discriminator_a", a), 1) + mse(D("discriminator_a", fa), 0))
    return g, d_a, d_b, fa, fb

  g, d_a, d_b, fa, fb = reference(p)
  assert float(m["g_loss"]) == pytest.approx(float(g), rel=1e-5)
  assert float(m["d_loss_b"]) == pytest.approx(float(d_b), rel=1e-5)
  assert float(m["d_loss_a"]) == pytest.approx(float(d_a), rel=1e-5)
  np.testing.assert_allclose(new.extra["pool_b"][:2], fb, atol=1e-6)
  np.testing.assert_allclose(new.extra["pool_a"][:2], fa, atol=1e-6)
  assert int(new.extra["pool_count_a"]) == 2 and int(new.step) == 1
  for name in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
    changed = jax.tree.map(lambda x, y: bool(jnp.any(x != y)), new.params[name],
                           p[name])
    assert all(jax.tree.leaves(changed)), name


def _styles_examples(gt, idx):
  return {"domain_a": gt["domain_a"][idx].astype(np.float32) / 127.5 - 1,
          "label_a": gt["label"][idx]}


def test_styles_evaluator_on_the_ground_truth():
  """The true restyled digits as 'translations': the domain-B reader reads them at its
  accuracy on them (class_accuracy_ab); un-styled with the true colour and texture
  they are the digits again (l1 ~ uint8 rounding), and the classifier reads them as
  well as it reads the digits themselves (content_and_style_accuracy); plain digits as
  translations are not un-styled to digits."""
  config = load_config("cyclegan_mnist", "tiny")
  gt = styles_ground_truth("test", 0)
  idx = np.arange(0, 500, 5)
  ev = Styles(config, None, {})
  examples = _styles_examples(gt, idx)
  ev.update(gt["domain_b"][idx].astype(np.float32) / 255, examples)
  r = ev.result()
  direct = (ev.net(gt["digit"][idx].astype(np.float32) / 255, progress=False)["logits"]
            .argmax(-1) == gt["label"][idx]).mean()
  read = (ev.reader(gt["domain_b"][idx], progress=False)["logits"].argmax(-1)
          == gt["label"][idx]).mean()
  assert r["class_accuracy_ab"] == read > 0.9
  assert r["class_accuracy_ab_net"] == "styles-classifier"
  assert r["l1_unstyled"] < 0.01
  assert abs(r["content_and_style_accuracy"] - direct) <= 0.02 and direct > 0.9
  ev = Styles(config, None, {})
  ev.update(gt["domain_a"][idx].astype(np.float32) / 255, examples)
  assert ev.result()["l1_unstyled"] > 0.1


def test_styles_evaluator_tells_content_from_style():
  """A G that keeps each digit but draws it in another example's style keeps its
  content (class_accuracy_ab as high as on the true pairs) and loses the pair's style
  (content_and_style_accuracy falls); one that draws another digit in the true style
  loses the content (class_accuracy_ab near chance)."""
  config = load_config("cyclegan_mnist", "tiny")
  gt = styles_ground_truth("test", 0)
  idx = np.arange(0, 500, 5)
  examples = _styles_examples(gt, idx)
  other = np.roll(idx, 50)  # half the split away: another style, another class
  assert (gt["label"][other] != gt["label"][idx]).all()

  def scores(styled):
    ev = Styles(config, None, {})
    ev.update(styled.astype(np.float32) / 255, examples)
    return ev.result()

  true = scores(gt["domain_b"][idx])
  restyled = scores(restyle(gt["digit"][idx], gt["colour"][other], gt["texture"][other]))
  assert restyled["class_accuracy_ab"] >= true["class_accuracy_ab"] - 0.05
  assert restyled["content_and_style_accuracy"] < true["content_and_style_accuracy"] - 0.3
  wrong = scores(restyle(gt["digit"][other], gt["colour"][idx], gt["texture"][idx]))
  assert wrong["class_accuracy_ab"] < 0.3


@pytest.fixture(scope="module")
def identity_trainer():
  """The tiny CycleGAN's trainer and state with G and F replaced by the identity."""
  config = load_config("cyclegan_mnist", "tiny")
  trainer = CycleGANTrainer(config, data.example_spec(config.data))
  trainer.translate = lambda params, x, direction="ab": x
  return config, trainer, jax.jit(trainer.init_state)(jax.random.key(0))


def _eval(config, trainer, state, swap=None):
  """The eval results over every 5th test example (domain_b replaced by ``swap``)."""
  source = data.get_source(config.data, "test")
  idx = np.arange(0, 500, 5)
  batch = data.preprocess.process(source[idx], config.data, np.random.default_rng(0),
                                  train=False, indices=idx)
  if swap:
    batch["domain_b"] = batch[swap]
  batch["mask"] = np.ones(len(idx), np.float32)
  sums = trainer.eval_step(state, {k: jnp.asarray(v) for k, v in batch.items()},
                           jax.random.key(0))
  return trainer.finalize_eval(jax.device_get(sums)), batch


def test_f_of_b_is_read_against_bs_label_per_background(identity_trainer):
  """F as the identity on plain digits (domain_b := domain_a) gives plain digits: the
  MNIST classifier reads them at its accuracy on them, on both backgrounds' examples;
  as the identity on the restyled digits it gives them back restyled, which the
  classifier reads as digits on dark backgrounds (bright strokes) far more often than
  on light ones (dark strokes on light grey: no plain digit)."""
  config, trainer, state = identity_trainer
  r, batch = _eval(config, trainer, state, swap="domain_a")
  gt = styles_ground_truth("test", 0)
  idx = np.arange(0, 500, 5)
  np.testing.assert_array_equal(batch["label_b"], gt["label"][idx])
  dark = gt["dark_background"][idx]
  assert r["num_examples_ba_dark"] == dark.sum() and r["num_examples_ba_light"] == (~dark).sum()
  from jaxgen.metrics import features
  read = features.get("mnist_classifier")(
      gt["digit"][idx], progress=False)["logits"].argmax(-1) == gt["label"][idx]
  assert r["class_accuracy_ba"] == pytest.approx(read.mean(), abs=1e-6)
  assert r["class_accuracy_ba_dark"] == pytest.approx(read[dark].mean(), abs=1e-6)
  assert r["class_accuracy_ba_light"] == pytest.approx(read[~dark].mean(), abs=1e-6)
  assert read.mean() > 0.95
  r, _ = _eval(config, trainer, state)
  assert r["class_accuracy_ba_light"] < r["class_accuracy_ba_dark"] - 0.3
  assert r["class_accuracy_ba"] == pytest.approx(
      (r["class_accuracy_ba_light"] * (~dark).sum()
       + r["class_accuracy_ba_dark"] * dark.sum()) / len(idx), abs=1e-6)


def test_the_styles_data_carry_labels_and_backgrounds():
  """label_a / label_b are the classes of the digits shown (in train, domain_b shows
  another digit: b_index), dark_background_b the style of domain_b's."""
  config = load_config("cyclegan_mnist", "tiny")
  for split in ("train", "test"):
    gt = styles_ground_truth(split, 0)
    arrays = data.get_source(config.data, split).arrays
    j = gt["b_index"]
    np.testing.assert_array_equal(arrays["label_a"], gt["label"])
    np.testing.assert_array_equal(arrays["label_b"], gt["label"][j])
    np.testing.assert_array_equal(arrays["dark_background_b"], gt["dark_background"][j])
    # dark: the texture is at most 0.4 everywhere; light: at least 0.6
    texture = gt["texture"]
    assert (texture[gt["dark_background"]].max() <= 0.4 + 1e-6
            and texture[~gt["dark_background"]].min() >= 0.6 - 1e-6)
    aligned = (arrays["label_a"] == arrays["label_b"]).mean()
    assert aligned == 1 if split == "test" else aligned < 0.2  # train: unpaired


def test_clear_errors():
  config = load_config("cyclegan_mnist", "tiny")
  config.data.name = "mnist5k_edges"
  with pytest.raises(ValueError, match="unpaired dataset"):
    CycleGANTrainer(config, data.example_spec(config.data))
  config = load_config("cyclegan_mnist", "tiny")
  config.model.norm = "batch"
  with pytest.raises(ValueError, match="instance"):
    CycleGANTrainer(config, data.example_spec(config.data))
