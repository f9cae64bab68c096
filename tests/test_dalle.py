"""DALL-E 1 (family dalle): the transformer's alignment and causality, its key-value
cache against the whole-sequence pass, the sparse masks against brute-force
constructions, the 1/8-7/8 loss against a hand computation, the per-position pad
tokens, the sampling filters and super-conditioning, re-ranking, the paper's
parameter count, the shared tiny run's evaluation and the refusals. The run, resume,
eval, summary and devices checks are the conformance suite's."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, load_config, run_main
from jaxgen import build, data, stages
from jaxgen.data import text as text_lib
from jaxgen.errors import ConfigError, StageError
from jaxgen.families.base import count_params
from jaxgen.families.dalle import networks, rerank, sampling
from jaxgen.families.dalle.trainer import DalleTrainer

PAPER_COUNT = 1_291_081_728  # shared/REFERENCE.md: minDALL-E stage 2


# --- helpers ----------------------------------------------------------------------------
def _stage(name, variant, role):
  """An untrained run of configs/<name>.py:<variant> as a Stage, without a workdir."""
  c = load_config(name, variant)
  trainer = build.make_trainer(c)
  state = jax.jit(trainer.init_state)(jax.random.key(0))
  dataset = data.get_dataset(c.data)
  tokenizer = dataset.tokenizer() if hasattr(dataset, "tokenizer") else None
  return stages.Stage(role, f"/runs/{name}", trainer, trainer.stage_params(state), 4,
                      "digest", tokenizer)


@pytest.fixture(scope="module")
def stage_pair():
  """A VQ-VAE on the captioned canvases (8 x 8 codes) and a tiny CLIP, untrained."""
  return (_stage("vqvae_mnist", "captions,tiny", "autoencoder"),
          _stage("clip_mnist", "tiny", "reranker"))


def _trainer(stage_pair, **model):
  ae, rr = stage_pair
  c = load_config("dalle_mnist", "tiny")
  c.model.update(model)
  return DalleTrainer(c, data.example_spec(c.data), {"autoencoder": ae, "reranker": rr})


def _sharpened(params, factor=8.0):
  """Parameters scaled up so that the logits depend strongly on the inputs (at
  N(0, 0.02) they are nearly uniform, and a wrong input would barely move them)."""
  return jax.tree.map(lambda p: p * factor, params)


def _batch(c, n=4):
  b = data.spread_batch(data.get_source(c.data, "test"), c.data, n, 0)
  return {k: jnp.asarray(v) for k, v in b.items()}


def _net(grid=(3, 4), text_length=5, kinds=(), layers=2, **kw):
  cfg = networks.TransformerConfig(width=16, layers=layers, heads=2, text_vocab=11,
                                   image_vocab=7, text_length=text_length, grid=grid,
                                   attention=kinds, **kw)
  net = networks.Transformer(cfg)
  n = cfg.image_length
  params = net.init(jax.random.key(0), jnp.zeros((1, text_length), jnp.int32),
                    jnp.zeros((1, n), jnp.int32))["params"]
  return cfg, net, _sharpened(params, 3.0)


# --- alignment and causality --------------------------------------------------------------
def test_last_text_position_predicts_image_token_0_and_each_logit_sees_only_the_past():
  """Changing token k changes exactly the logits of the tokens after k (the others
  stay bit for bit, the masked keys weigh exactly 0): text logit i
  predicts text token i + 1, image logit 0 (read at the last text position) depends on
  the text alone, image logit j on the image tokens before j."""
  cfg, net, params = _net()
  lt, n = cfg.text_length, cfg.image_length
  rng = np.random.default_rng(0)
  text = jnp.asarray(rng.integers(0, 11, (1, lt)))
  image = jnp.asarray(rng.integers(0, 7, (1, n)))
  apply = jax.jit(lambda t, i: net.apply({"params": params}, t, i))
  t0, i0 = apply(text, image)
  assert t0.shape == (1, lt - 1, 11) and i0.shape == (1, n, 7)
  for k in range(lt):  # text token k: text logits i >= k (they predict i + 1 > k), all image
    t1, i1 = apply(text.at[0, k].set((text[0, k] + 1) % 11), image)
    changed = np.abs(np.asarray(t1 - t0)).max(-1)[0] > 0
    np.testing.assert_array_equal(changed, np.arange(lt - 1) >= k)
    assert np.abs(np.asarray(i1 - i0)).max(-1)[0].min() > 0
  for k in range(n):  # image token k: image logits j > k only; no text logit
    t1, i1 = apply(text, image.at[0, k].set((image[0, k] + 1) % 7))
    np.testing.assert_array_equal(t1, t0)
    changed = np.abs(np.asarray(i1 - i0)).max(-1)[0] > 0
    np.testing.assert_array_equal(changed, np.arange(n) > k)


def test_the_trainer_scores_image_token_j_with_the_logits_read_before_it(stage_pair):
  """token_losses: image CE j is -log softmax(logits at the position before token j)
  [token j], recomputed by hand from the network's logits of the sequence; the last
  text position's logits score image token 0."""
  tr = _trainer(stage_pair)
  params = _sharpened(jax.jit(tr.init_state)(jax.random.key(1)).params)
  b = _batch(tr.config)
  frozen = {"autoencoder": stage_pair[0].params}
  codes = jax.jit(tr.codes)(frozen, b["image"])
  _, _, image_ce = jax.jit(tr.token_losses)(params, b["text"], codes)
  tokens = tr.model_text(tr.pad_caption(b["text"]))
  _, logits = tr.net.apply({"params": params}, tokens, codes)
  logp = np.asarray(jax.nn.log_softmax(logits, -1), np.float64)
  c = np.asarray(codes)
  want = -np.take_along_axis(logp, c[..., None], -1)[..., 0]
  np.testing.assert_allclose(image_ce, want, rtol=1e-4, atol=2e-4)
  # ... and the logits of image token 0 are those the cache's prefill reads at the
  # last text position.
  caches = networks.init_cache(tr.net_config, tokens.shape[0])
  first, _ = tr.net.apply({"params": params}, tokens, caches,
                          method=networks.Transformer.prefill)
  np.testing.assert_allclose(first, logits[:, 0], rtol=1e-4, atol=1e-4)


# --- the key-value cache ------------------------------------------------------------------
@pytest.mark.parametrize("kinds", [(), ("row", "column", "conv")])
def test_the_cache_gives_the_logits_of_the_whole_sequence(kinds):
  """prefill, then step after step, gives at every position the teacher-forced
  logits (dense and the sparse pattern)."""
  cfg, net, params = _net(grid=(4, 5), kinds=kinds, layers=3, conv_kernel=3)
  rng = np.random.default_rng(1)
  text = jnp.asarray(rng.integers(0, 11, (2, cfg.text_length)))
  image = jnp.asarray(rng.integers(0, 7, (2, cfg.image_length)))
  _, want = net.apply({"params": params}, text, image)

  @jax.jit
  def cached(text, image):
    caches = networks.init_cache(cfg, 2)
    first, caches = net.apply({"params": params}, text, caches,
                              method=networks.Transformer.prefill)
    def body(caches, j):
      logits, caches = net.apply({"params": params}, image[:, j], j, caches,
                                 method=networks.Transformer.step)
      return caches, logits
    _, rest = jax.lax.scan(body, caches, jnp.arange(cfg.image_length - 1))
    return jnp.concatenate([first[:, None], jnp.moveaxis(rest, 0, 1)], 1)
  np.testing.assert_allclose(cached(text, image), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("model,sample", [
    ({}, {}),
    ({"attention": "sparse", "mask_pads": True, "pad_tokens": "shared"},
     {"top_k": 5, "top_p": 0.9, "temperature": 0.7}),
    ({"blank_caption_prob": 0.1}, {"cond_scale": 3.0}),
])
def test_cached_sampling_draws_the_tokens_of_uncached_sampling(stage_pair, model,
                                                               sample):
  """The same keys give the same tokens through the cache as by the whole sequence at
  every step: plain; sparse with masked shared pads and the filters; super-
  conditioned."""
  tr = _trainer(stage_pair, **model)
  tr.config.sample.update(sample)
  tr.setup_sampling(tr.config)
  params = _sharpened(jax.jit(tr.init_state)(jax.random.key(2)).params, 4.0)
  text = _batch(tr.config)["text"]
  keys = jax.random.split(jax.random.key(3), text.shape[0])
  draw = jax.jit(tr.draw_tokens, static_argnames="cached")
  a = np.asarray(draw(params, text, keys, cached=True))
  b = np.asarray(draw(params, text, keys, cached=False))
  assert a.shape == (4, 64)
  np.testing.assert_array_equal(a, b)
  assert len(np.unique(a)) > 3  # the draws are not all one code
  other = np.asarray(draw(params, text, jax.random.split(jax.random.key(4), 4),
                          cached=True))
  assert (other != a).mean() > 0.2  # other keys, other tokens


def test_super_conditioning_mixes_the_logits_of_the_caption_and_the_empty_caption(
    stage_pair):
  """The first token drawn with cond_scale s is the draw from
  filter(u + s (c - u)) of the image-token-0 logits of the caption (c) and of the
  empty caption <bos> <eos> (u), computed by two separate passes."""
  tr = _trainer(stage_pair, blank_caption_prob=0.1)
  assert tr.tokenizer.decode(tr.null_caption) == "" and list(tr.null_caption[:2]) == [
      text_lib.BOS, text_lib.EOS]
  params = _sharpened(jax.jit(tr.init_state)(jax.random.key(5)).params, 4.0)
  text = _batch(tr.config)["text"]
  keys = jax.random.split(jax.random.key(6), 4)
  scale = jnp.asarray([0.0, 1.0, 3.0, 8.0])
  first = np.asarray(jax.jit(tr.draw_tokens)(params, text, keys, scale)[:, 0])
  image = jnp.zeros((4, tr.net_config.image_length), jnp.int32)
  logits = lambda t: tr.net.apply({"params": params},
                                  tr.model_text(tr.pad_caption(t)), image)[1][:, 0]
  c = logits(text)
  u = logits(jnp.broadcast_to(jnp.asarray(tr.null_caption), text.shape))
  mixed = u + scale[:, None] * (c - u)
  want = [int(jax.random.categorical(jax.random.fold_in(k, 0), m))
          for k, m in zip(keys, mixed)]
  np.testing.assert_array_equal(first, want)


# --- the sparse masks ---------------------------------------------------------------------
def _brute_force(kind, lt, h, w, kernel=11):
  """The mask built token pair by token pair from the paper's description (and, for
  the convolution, ru-dalle's construction: from each key, the cells of a k x k
  window around it that come after it)."""
  s = lt + h * w
  mask = np.zeros((s, s), bool)
  for q in range(s):
    for k in range(q + 1):  # causal; text queries see earlier text, image queries all text
      if q < lt or k < lt or kind == "dense":
        mask[q, k] = True
  if kind == "row":  # the previous w + 1 image tokens, itself included
    for p in range(h * w):
      for d in range(w + 1):
        if p - d >= 0:
          mask[lt + p, lt + p - d] = True
  elif kind == "column":  # its own column, at or above it
    for r in range(h):
      for c in range(w):
        for r2 in range(r + 1):
          mask[lt + r * w + c, lt + r2 * w + c] = True
  elif kind == "conv":
    half = kernel // 2
    for key in range(h * w):
      r, c = divmod(key, w)
      for dr in range(-half, half + 1):
        for dc in range(-half, half + 1):
          cell = ((r + dr) % h) * w + (c + dc) % w
          if cell >= key:
            mask[lt + cell, lt + key] = True
  return mask


@pytest.mark.parametrize("kind", ["dense", "row", "column", "conv"])
@pytest.mark.parametrize("lt,h,w,kernel", [(6, 4, 4, 3), (3, 5, 7, 3), (4, 8, 8, 11),
                                          (2, 13, 12, 11)])
def test_each_sparse_mask_is_its_brute_force_construction(kind, lt, h, w, kernel):
  got = networks.attention_mask(kind, lt, (h, w), kernel)
  np.testing.assert_array_equal(got, _brute_force(kind, lt, h, w, kernel))


def test_the_masks_on_the_papers_4x4_example_and_the_layer_pattern():
  """Figure 11 (6 text tokens, a 4 x 4 grid): row attention reaches 5 image tokens
  back to the same column of the previous row; every image token sees all 6 text
  tokens; layer i uses column attention where (i - 2) mod 4 = 0, the last layer
  convolutional attention, the others row attention."""
  row = networks.attention_mask("row", 6, (4, 4))
  assert row[6 + 8, 6:].nonzero()[0].tolist() == [4, 5, 6, 7, 8]
  assert row[6:, :6].all()
  col = networks.attention_mask("column", 6, (4, 4))
  assert col[6 + 13, 6:].nonzero()[0].tolist() == [1, 5, 9, 13]
  assert networks.layer_kinds(8, True) == (
      "row", "column", "row", "row", "row", "column", "row", "conv")
  assert networks.layer_kinds(3, False) == ("dense",) * 3
  # On an 8 x 8 grid an 11 x 11 window (with wrap-around) covers every earlier token.
  np.testing.assert_array_equal(networks.attention_mask("conv", 4, (8, 8)),
                                networks.attention_mask("dense", 4, (8, 8)))


@pytest.mark.parametrize("kind", ["row", "column", "conv"])
def test_a_one_layer_network_reads_exactly_what_its_mask_allows(kind):
  """With one layer, the logits at position q change with the token at position k
  exactly where the mask allows q to attend to k (or k = q)."""
  cfg, net, params = _net(grid=(4, 5), text_length=3, kinds=(kind,), layers=1,
                          conv_kernel=3)
  mask = networks.attention_mask(kind, 3, (4, 5), 3)
  rng = np.random.default_rng(2)
  text = jnp.asarray(rng.integers(0, 11, (1, 3)))
  image = jnp.asarray(rng.integers(0, 7, (1, 20)))
  apply = jax.jit(lambda i: net.apply({"params": params}, text, i)[1])
  base = apply(image)
  for k in range(19):  # image token k sits at position 3 + k; logit j at 2 + j
    moved = apply(image.at[0, k].set((image[0, k] + 1) % 7))
    changed = np.abs(np.asarray(moved - base)).max(-1)[0] > 0
    allowed = mask[2 + np.arange(20), 3 + k]
    np.testing.assert_array_equal(changed, allowed, err_msg=f"{kind}, token {k}")


# --- the loss and the pad tokens ----------------------------------------------------------
@pytest.mark.parametrize("mask_pads", [False, True])
def test_the_loss_weights_text_and_image_means_by_an_eighth_and_seven_eighths(
    stage_pair, mask_pads):
  """loss = 1/8 (mean text CE over the batch's text targets) + 7/8 (mean image CE
  over its image tokens), from the network's logits by hand: the text targets are the
  caption's ids 1.. with each pad replaced by its position's own id (and, with
  mask_pads, left out)."""
  tr = _trainer(stage_pair, mask_pads=mask_pads)
  params = _sharpened(jax.jit(tr.init_state)(jax.random.key(7)).params)
  b = _batch(tr.config)
  frozen = {"autoencoder": stage_pair[0].params}
  loss, metrics = jax.jit(tr.loss)(params, b, jax.random.key(8), frozen)
  codes = np.asarray(jax.jit(tr.codes)(frozen, b["image"]))
  text = np.asarray(b["text"])
  lt = text.shape[1]
  tokens = np.where(text == 0, tr.tokenizer.vocab_size + np.arange(lt), text)
  key_mask = tr.key_mask(jnp.asarray(text))
  tl, il = tr.net.apply({"params": params}, jnp.asarray(tokens), jnp.asarray(codes),
                        key_mask)
  ce = lambda logits, y: -np.take_along_axis(
      np.asarray(jax.nn.log_softmax(np.asarray(logits, np.float64), -1)),
      y[..., None], -1)[..., 0]
  text_ce, image_ce = ce(tl, tokens[:, 1:]), ce(il, codes)
  real = text[:, 1:] != 0 if mask_pads else np.ones_like(text_ce, bool)
  text_loss, image_loss = text_ce[real].mean(), image_ce.mean()
  assert real.sum() < real.size if mask_pads else True
  np.testing.assert_allclose(metrics["text_loss"], text_loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["image_loss"], image_loss, rtol=1e-5)
  np.testing.assert_allclose(loss, text_loss / 8 + 7 * image_loss / 8, rtol=1e-5)
  assert abs(text_loss - image_loss) > 0.1  # the weights are told apart


def test_each_pad_position_has_its_own_learned_token(stage_pair):
  """Per-position pads: the pad at position i is id V + i, so the loss's gradient
  reaches embedding row V + i exactly for the positions that hold a pad in the batch;
  shared pads keep id 0. With mask_pads the pads' embeddings do not change the image
  logits; without, they do."""
  tr = _trainer(stage_pair)
  v, lt = tr.tokenizer.vocab_size, tr.text_length
  assert tr.text_vocab == v + lt
  b = _batch(tr.config)
  text = np.asarray(b["text"])
  np.testing.assert_array_equal(
      tr.model_text(jnp.asarray(text)),
      np.where(text == 0, v + np.arange(lt)[None], text))
  params = jax.jit(tr.init_state)(jax.random.key(9)).params
  frozen = {"autoencoder": stage_pair[0].params}
  grads = jax.grad(lambda p: tr.loss(p, b, jax.random.key(0), frozen)[0])(params)
  rows = np.abs(np.asarray(grads["text_embed"]["embedding"][v:])).sum(1) > 0
  np.testing.assert_array_equal(rows, (text == 0).any(0))
  assert 0 < rows.sum() < lt
  shared = _trainer(stage_pair, pad_tokens="shared")
  assert shared.text_vocab == v
  np.testing.assert_array_equal(shared.model_text(jnp.asarray(text)), text)

  codes = jax.jit(tr.codes)(frozen, b["image"])
  for mask_pads in (False, True):
    t = _trainer(stage_pair, mask_pads=mask_pads)
    p = _sharpened(jax.jit(t.init_state)(jax.random.key(10)).params)
    moved = jax.tree.map(lambda x: x, p)
    emb = p["text_embed"]["embedding"]
    moved["text_embed"] = {"embedding": emb.at[v:].set(emb[v:] + 1.0)}
    run = lambda q: t.token_losses(q, b["text"], codes)[2]
    differs = float(jnp.abs(run(moved) - run(p)).max()) > 1e-4
    assert differs != mask_pads, mask_pads


# --- sampling filters and re-ranking ------------------------------------------------------
def test_temperature_top_k_and_top_p_by_hand():
  logits = jnp.log(jnp.asarray([[0.05, 0.4, 0.1, 0.25, 0.2]]))
  np.testing.assert_allclose(sampling.filter_logits(logits, 2.0), logits / 2, rtol=1e-6)
  kept = lambda **kw: np.isfinite(np.asarray(sampling.filter_logits(logits, **kw)))[0]
  np.testing.assert_array_equal(kept(top_k=2), [0, 1, 0, 1, 0])
  np.testing.assert_array_equal(kept(top_k=0), [1] * 5)
  # sorted: 0.4, 0.25, 0.2, 0.1, 0.05: cumulative 0.4, 0.65, 0.85, 0.95, 1
  np.testing.assert_array_equal(kept(top_p=0.39), [0, 1, 0, 0, 0])
  np.testing.assert_array_equal(kept(top_p=0.41), [0, 1, 0, 1, 0])
  np.testing.assert_array_equal(kept(top_p=0.84), [0, 1, 0, 1, 1])
  np.testing.assert_array_equal(kept(top_p=0.86), [0, 1, 1, 1, 1])
  # top-p on what top-k kept, renormalised: 0.4 / 0.65 = 0.615, 0.25 / 0.65
  np.testing.assert_array_equal(kept(top_k=2, top_p=0.6), [0, 1, 0, 0, 0])
  np.testing.assert_array_equal(kept(top_k=2, top_p=0.63), [0, 1, 0, 1, 0])
  # draws from the filtered logits follow its renormalised probabilities
  keys = jax.random.split(jax.random.key(0), 20000)
  tokens = np.asarray(sampling.draw(keys, jnp.broadcast_to(
      sampling.filter_logits(logits, top_k=2), (20000, 5)), 0))
  np.testing.assert_allclose(np.bincount(tokens, minlength=5) / 20000,
                             [0, 0.4 / 0.65, 0, 0.25 / 0.65, 0], atol=0.015)


def test_reranking_keeps_the_candidate_clip_finds_closest(stage_pair):
  """The evaluation's sweep input picks n; best of n is, among the first n of the
  caption's candidates (candidate j is the same draw whatever n), the one of highest
  cosine similarity in the reranker, computed here with the stage's own embeddings."""
  ae, rr = stage_pair
  c = load_config("dalle_mnist", "tiny")
  c.eval.rerank_candidates = (1, 2, 4)
  tr = DalleTrainer(c, data.example_spec(c.data), {"autoencoder": ae, "reranker": rr})
  params = _sharpened(jax.jit(tr.init_state)(jax.random.key(11)).params, 4.0)
  frozen = {"autoencoder": ae.params, "reranker": rr.params}
  text = _batch(tr.config)["text"]
  rng = jax.random.key(12)
  four = np.asarray(jax.jit(tr.candidates, static_argnames="n")(params, frozen, rng,
                                                                text, n=4))
  e_img = np.asarray(rr.trainer.embed_image(rr.params, four.reshape(16, 32, 32, 1)))
  e_txt = np.asarray(rr.trainer.embed_text(rr.params, text))
  sims = np.einsum("bnd,bd->bn", e_img.reshape(4, 4, -1), e_txt)
  assert len(set(sims.argmax(1).tolist())) > 1  # not always the same candidate
  gen = jax.jit(tr.sample, static_argnums=2)
  for n in (1, 2, 4):
    got = gen(params, rng, 4, {"text": text, "rerank_candidates": jnp.full(4, n)}, frozen)
    best = sims[:, :n].argmax(1)
    np.testing.assert_allclose(got, four[np.arange(4), best], atol=1e-6, err_msg=str(n))


def test_a_weights_file_reranker_reads_the_captions_as_bpe_ids():
  """The word ids of a caption become, inside the program, the BPE ids that CLIP's
  tokenizer gives its text (the fixture vocabulary of test_clip.py)."""
  from jaxgen.data.clip_tokenizer import CLIPTokenizer
  fixtures = os.path.join(REPO, "tests", "fixtures")
  bpe = CLIPTokenizer.from_files(os.path.join(fixtures, "clip_vocab.json"),
                                 os.path.join(fixtures, "clip_merges.txt"))
  c = load_config("dalle_mnist", "tiny")
  words = data.get_dataset(c.data).tokenizer()
  tokens = np.asarray(data.get_source(c.data, "test")[np.arange(0, 500, 50)]["text"])
  table = rerank.bpe_table(words, bpe)
  got = np.asarray(rerank.to_bpe(jnp.asarray(tokens), table, 77))
  np.testing.assert_array_equal(got, bpe(words.decode_batch(tokens), 77))
  assert (table[:, 1] >= 0).any()  # some word takes several BPE ids


def test_a_clip_weights_file_reranks_through_bpe_ids(stage_pair, monkeypatch):
  """A CLIP weights file as the reranker (no word tokenizer: a CLIPEncoder stage)
  scores each candidate by its image embedding's cosine with the embedding of the
  caption's BPE ids, computed here from the caption strings by the tokenizer."""
  from jaxgen.data.clip_tokenizer import CLIPTokenizer
  from jaxgen.metrics import clip_score
  from jaxgen.models import clip
  from jaxgen.weights.clip import CLIPEncoder
  fixtures = os.path.join(REPO, "tests", "fixtures")
  bpe = CLIPTokenizer.from_files(os.path.join(fixtures, "clip_vocab.json"),
                                 os.path.join(fixtures, "clip_merges.txt"))
  monkeypatch.setattr(CLIPTokenizer, "from_openai_bpe", classmethod(lambda cls, p: bpe))
  monkeypatch.setattr(clip_score, "bpe_file", lambda path=None: "bpe.txt.gz")
  cfg = clip.CLIPConfig(embed_dim=16, image_size=32, patch_size=8, vision_width=32,
                        vision_layers=1, vision_heads=2, context_length=77,
                        vocab_size=len(bpe.vocab), text_width=32, text_layers=1,
                        text_heads=2)
  rng = np.random.default_rng(0)
  variables = {"params": jax.tree.map(
      lambda s: (0.2 * rng.standard_normal(s.shape)).astype(np.float32),
      clip.param_shapes(cfg))}
  encoder = CLIPEncoder(cfg)
  file_stage = stages.Stage("reranker", "/weights/model.safetensors", encoder,
                            variables, 0, "digest")
  c = load_config("dalle_mnist", "tiny")
  tr = DalleTrainer(c, data.example_spec(c.data),
                    {"autoencoder": stage_pair[0], "reranker": file_stage})
  text = _batch(c)["text"]
  images = jnp.asarray(rng.uniform(0, 1, (4, 2, 32, 32, 1)), jnp.float32)
  got = tr.rerank_scores({"reranker": variables}, images, text)
  e_img = encoder.embed_image(variables, images.reshape(8, 32, 32, 1)).reshape(4, 2, -1)
  e_txt = encoder.embed_text(variables, bpe(tr.tokenizer.decode_batch(np.asarray(text)),
                                            77))
  np.testing.assert_allclose(got, np.einsum("bnd,bd->bn", e_img, e_txt), rtol=1e-5,
                             atol=1e-6)


# --- the paper's count ---------------------------------------------------------------------
def test_the_paper_variant_has_min_dalle_stage_2_count_exactly(capsys):
  """1,291,081,728 (shared/REFERENCE.md), also from the closed form of minDALL-E's
  Transformer1d: token embeddings and heads 4 V D, positions (64 + 256) D, 42 blocks
  of 12 D^2 + 13 D, the final LayerNorm 2 D. Shapes only (jax.eval_shape)."""
  from jaxgen import main as cli
  c = load_config("dalle_mnist", "paper")
  d, v, layers = 1536, 16384, 42
  assert 4 * v * d + (64 + 256) * d + layers * (12 * d * d + 13 * d) + 2 * d == PAPER_COUNT
  assert cli.summary(c) == {"transformer": PAPER_COUNT}
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {
      "transformer": PAPER_COUNT}
  # the DALL-E paper's choices instead: 16 + 16 row and column embeddings in place of
  # 256 positions, and a pad token per text position (a row of the text embedding
  # and a column of the text head each)
  c.model.update(image_positions="row_col", pad_tokens="per_position")
  tr = build.make_trainer(c)
  net, args, kwargs = tr.networks()["transformer"]
  assert count_params(net, *args, **kwargs) == PAPER_COUNT - 256 * d + 32 * d + 2 * 64 * d


# --- the shared tiny run ----------------------------------------------------------------------
def test_the_tiny_run_evaluates_nll_and_each_rerank_count(tiny_runs):
  wd = tiny_runs("dalle_mnist")
  result = json.load(open(os.path.join(wd, "eval.json")))
  c = load_config("dalle_mnist", "tiny")
  assert result["rerank_candidates"] == [1, 2]
  for n in (1, 2):
    assert 0 <= result[f"caption_accuracy_digit_rerank_{n}"] <= 1
    assert math.isfinite(result[f"clip_score_rerank_{n}"])
  n_tokens = 8 * 8  # the tiny dVAE's 8 x 8 codes of 32 x 32 canvases
  assert result["image_nll_nats"] == pytest.approx(
      result["image_nll_nats_per_token"] * n_tokens, rel=1e-6)
  assert result["image_code_bits_per_dim"] == pytest.approx(
      result["image_nll_nats"] / (32 * 32 * math.log(2)), rel=1e-6)
  # near log K after 4 steps from a uniform start
  assert abs(result["image_nll_nats_per_token"] - math.log(16)) < 0.5
  assert result["text_nll_nats_per_token"] > 0
  assert os.path.isfile(os.path.join(wd, "samples", f"step_{c.train.num_steps}.png"))


# --- refusals ---------------------------------------------------------------------------------
def _one_line(e):
  assert "\n" not in str(e), str(e)
  return str(e)


def test_a_stage_with_continuous_latents_is_refused(stage_pair):
  c = load_config("dalle_mnist", "tiny")
  kl = _stage("autoencoder_kl_mnist", "tiny", "autoencoder")
  with pytest.raises(StageError, match="continuous latents") as e:
    DalleTrainer(c, data.example_spec(c.data), {"autoencoder": kl,
                                                "reranker": stage_pair[1]})
  assert "configs/dvae_mnist.py:captions" in _one_line(e.value)


def test_a_caption_longer_than_the_text_context_is_refused(stage_pair):
  with pytest.raises(ConfigError, match="longer than the transformer's text context") as e:
    _trainer(stage_pair, text_length=8)
  assert "config.model.text_length to at least 16" in _one_line(e.value)


def test_a_reranker_with_another_tokenizer_is_refused(stage_pair):
  ae, rr = stage_pair
  other = stages.Stage("reranker", "/runs/clip2", rr.trainer, rr.params, 4, "d",
                       text_lib.Tokenizer(["a", "seven", "zebra"]))
  c = load_config("dalle_mnist", "tiny")
  with pytest.raises(StageError, match="another tokenizer") as e:
    DalleTrainer(c, data.example_spec(c.data), {"autoencoder": ae, "reranker": other})
  assert "config.stages.reranker=/runs/clip2" in _one_line(e.value)


def test_more_candidates_than_the_sample_batch_allows_are_refused(stage_pair):
  ae, rr = stage_pair
  c = load_config("dalle_mnist", "tiny")
  c.eval.update(rerank_candidates=(1, 8, 600), sample_batch_size=4)
  with pytest.raises(ConfigError, match="more than config.sample.max_batch=2048") as e:
    DalleTrainer(c, data.example_spec(c.data), {"autoencoder": ae, "reranker": rr})
  assert "lower eval.sample_batch_size to 3 or fewer" in _one_line(e.value)
  c.eval.rerank_candidates = (1, 0)
  with pytest.raises(ConfigError, match="at least 1"):
    DalleTrainer(c, data.example_spec(c.data), {"autoencoder": ae, "reranker": rr})


def test_super_conditioning_without_blank_captions_is_refused(stage_pair):
  ae, rr = stage_pair
  c = load_config("dalle_mnist", "tiny")
  c.sample.cond_scale = 3.0
  with pytest.raises(ConfigError, match="blank_caption_prob"):
    DalleTrainer(c, data.example_spec(c.data), {"autoencoder": ae, "reranker": rr})


def test_the_command_line_gives_each_refusal_as_one_error_line():
  """Through python -m jaxgen.main: exit status 2, one ``error:`` line (the paper
  variant needs no stage for --mode=summary); training it without a stage, too."""
  out = run_main("--config=configs/dalle_mnist.py:paper", "--mode=summary",
                 "--config.model.text_length=8", check=False)
  assert out.returncode == 2, out.stderr[-2000:]
  lines = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and "config.model.text_length" in lines[0], out.stderr[-2000:]
