r"""The unCLIP prior (Ramesh et al. 2022, section 2.2; kakaobrain/karlo) on
mnist5k_captions: CLIP text -> CLIP image embeddings of a frozen clip_mnist run.

  python -m jaxgen.main --config=configs/clip_mnist.py --workdir=/tmp/clip_mnist
  python -m jaxgen.main --config=configs/unclip_prior_mnist.py --workdir=/tmp/unclip_prior \
      --config.stages.clip=/tmp/clip_mnist
  python -m jaxgen.main --config=configs/unclip_prior_mnist.py:paper --mode=summary
Then the decoder and the pipeline: configs/unclip_mnist.py.

Variants (comma-separated after the colon):
  (default) a causal transformer (width 256, 4 layers, 4 heads) over [the caption's
            CLIP token states, its CLIP text embedding, the timestep, the noised image
            embedding, a learned query], predicting the standardised (per-dimension
            mean and std of 2,000 training embeddings, kept in the run) unnoised image
            embedding; T = 1000 cosine; captions dropped 10%; DDIM-25, guidance 4, the
            better of 2 candidates by the dot product with the text embedding.
            eval.json: x0 MSE, cosine(sampled, true image embedding) at guidance 1
            and 4 (cosine_guidance_S) beside cosine(text embedding, true image
            embedding) (cosine_text_baseline).
  paper     karlo's prior_1B_vit_l (width 2048, 20 layers, 32 heads, 77 + 4 tokens,
            768-d CLIP): 1,022,028,544 parameters; --mode=summary needs no stage.
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
unclip = config_file.module_beside(__file__, "unclip_base")

STAGE_CONFIGS = {"clip": "clip_mnist"}


def get_config(arg=None):
  variants = common.parse_arg(arg, "unclip_prior_mnist", {"tiny", "paper"})
  c = unclip.base("prior")
  c.train.num_steps = 2000
  c.eval.guidance_scales = (1.0, 4.0)
  if "paper" in variants:
    unclip.paper(c)
  if "tiny" in variants:
    unclip.tiny(c)
  return c
