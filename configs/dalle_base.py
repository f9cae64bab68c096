"""The dalle family's fields and their defaults (not a runnable config): ``base()`` is
what configs/dalle_*.py start from, ``tiny(c)`` what their ``tiny`` variants share.

``model``: the transformer (width, layers, heads; 0 / () take the text context, the
text vocabulary and the image grid and codes from the captions and the stage),
``image_positions`` (row_col: the paper's row + column embeddings; learned: one per
position, minDALL-E), ``pad_tokens`` (per_position: the paper's learned pad token per
text position; shared: one pad id, minDALL-E), ``mask_pads``, ``attention`` (dense, or
sparse: the paper's row / column / convolutional masks), ``blank_caption_prob``
(super-conditioning's caption dropout). ``loss``: the text and image weights (1/8,
7/8). ``sample``: temperature, top-k (minDALL-E's 256; 0: all codes), top-p (1: no
cut), cond_scale,
the key-value cache, ``candidates`` (best of n by the reranker, where no sweep says),
``max_batch`` (the most sequences one sampling call may draw), ``reranker_bpe`` (OpenAI's BPE file for a CLIP
weights-file reranker; '' = the weights cache). ``eval.rerank_candidates``: the
candidate counts the sample metrics are computed at; ``eval.clip_stage`` (the CLIP of
clip_score and clip_r_precision) follows ``stages.reranker`` unless set.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def base(stage_config: str) -> ml_collections.ConfigDict:
  """The default over the stage of ``stage_config`` (``name:variant``): its data."""
  name, _, variant = stage_config.partition(":")
  stage_data = config_file.sibling(__file__, name, variant or None).data
  c = common.config(
      "dalle",
      data=stage_data,
      stages=ml_collections.ConfigDict(dict(autoencoder="", reranker="")),
      model=ml_collections.ConfigDict(dict(
          width=128, layers=4, heads=4, mlp_ratio=4, dropout=0.0,
          text_length=0, text_vocab_size=0, image_grid=(), image_vocab_size=0,
          image_positions="row_col", pad_tokens="per_position", mask_pads=False,
          attention="dense", conv_kernel=11, blank_caption_prob=0.0)),
      loss=ml_collections.ConfigDict(dict(text_weight=1 / 8, image_weight=7 / 8)),
      sample=ml_collections.ConfigDict(dict(
          temperature=1.0, top_k=256, top_p=1.0, cond_scale=1.0, use_cache=True,
          candidates=1, max_batch=2048, reranker_bpe="")),
      optim=common.optim(name="adamw", learning_rate=1e-3, b2=0.95, weight_decay=0.01,
                         weight_decay_mask="matrices", warmup_steps=100,
                         grad_clip_norm=1.0, ema_decay=0.999, ema_warmup=True),
      train=common.train(batch_size=64, num_steps=3000, checkpoint_every=1000,
                         sample_every=1000, num_samples=8),
      eval=common.mnist_classifier_eval(
          batch_size=100, metrics=("caption_accuracy", "clip_r_precision", "clip_score",
                                   "fid"),
          num_samples=500, sample_batch_size=50, reference_split="train",
          rerank_candidates=(1, 8, 32)))
  c.data.layouts = 8  # each training digit laid out 8 times (the stage saw one)
  # The CLIP that scores the samples is the reranker unless --config.eval.clip_stage
  # names another (a derived reference: setting clip_stage leaves the reranker).
  c.eval.clip_stage = c.stages.get_ref("reranker") + ""
  return c


def tiny(c: ml_collections.ConfigDict) -> None:
  """Seconds, for tests: 3 layers of width 16 with the sparse pattern (row, column,
  convolutional), 4 steps of batch 8, two candidates."""
  c.data.layouts = 1
  c.model.update(width=16, layers=3, heads=2, attention="sparse")
  c.train.update(common.tiny_train())
  c.optim.warmup_steps = 1
  c.eval.update(batch_size=8, num_examples=16, metrics=("caption_accuracy",
                                                        "clip_score"),
                num_samples=8, sample_batch_size=4, rerank_candidates=(1, 2))
