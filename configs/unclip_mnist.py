r"""unCLIP (DALL-E 2; Ramesh et al. 2022; kakaobrain/karlo) on mnist5k_captions: the
decoder from CLIP image embeddings, and with a prior and an upsampler stage the
text-to-image pipeline text -> prior -> 16x16 decoder -> 32x32 upsampler.

  python -m jaxgen.main --config=configs/clip_mnist.py --workdir=/tmp/clip_mnist
  python -m jaxgen.main --config=configs/unclip_prior_mnist.py --workdir=/tmp/unclip_prior \
      --config.stages.clip=/tmp/clip_mnist
  python -m jaxgen.main --config=configs/unclip_upsampler_mnist.py --workdir=/tmp/unclip_up
  python -m jaxgen.main --config=configs/unclip_mnist.py --workdir=/tmp/unclip \
      --config.stages.clip=/tmp/clip_mnist --config.stages.prior=/tmp/unclip_prior \
      --config.stages.upsampler=/tmp/unclip_up
  # the pipeline's text-to-image metrics, at another prior guidance, with CLIP's own
  python -m jaxgen.main --config=configs/unclip_mnist.py --workdir=/tmp/unclip --mode=eval \
      --config.stages.clip=/tmp/clip_mnist --config.stages.prior=/tmp/unclip_prior \
      --config.stages.upsampler=/tmp/unclip_up --config.sample.prior_guidance_scale=1 \
      --config.eval.metrics="('fid','caption_accuracy','clip_score','clip_r_precision')" \
      --config.eval.clip_stage=/tmp/clip_mnist
  # pictures: samples, variations (plain and bipartite), interpolation, text_diff
  python -m jaxgen.main --config=configs/unclip_mnist.py --workdir=/tmp/unclip --mode=sample ...
  # the same of image files
  python -m jaxgen.families.unclip.edit --workdir=/tmp/unclip --images=a.png,b.png --out=/tmp/edits \
      [--mode=interpolation | --mode=text_diff --source_caption="a 3" --target_caption="a thick 3"]
  python -m jaxgen.evaluators.ceiling --config=configs/unclip_mnist.py \
      --config.eval.metrics=fid,caption_accuracy
  python -m jaxgen.main --config=configs/unclip_mnist.py:paper --mode=summary

Variants (comma-separated after the colon):
  (default) the decoder: guided-diffusion's U-Net (32 channels, levels (1, 2), 2
            blocks, attention at both, scale-shift norm) at 16x16 (2x2 block means of
            the canvases), the CLIP image embedding added to the time embedding and
            made 4 attention tokens before the caption's CLIP token states; image
            embedding dropped to a learned null 10%, caption 50%; T = 1000 cosine,
            v-prediction, DDIM-25. With the prior stage (guidance 4, 2 candidates) it samples
            from captions and eval.json holds FID (MNIST classifier, test canvases)
            and caption_accuracy at decoder guidance 1, 3 and 8, beside the
            shuffled-caption baseline, and the same at prior guidance 1
            (eval.prior_guidance_scales: NAME_guidance_S_prior_1); without it, the
            same metrics of variations of the test canvases (each sample read
            against its source's caption: the digit and its attributes must
            survive). Both: 4 variations of each of 100 test canvases at decoder
            guidance 8, read by the MNIST classifier against the source's label
            (variations_accuracy), their mean pairwise distance in its features
            (variations_diversity) beside that of the real test digits of the
            source's class (variations_diversity_real). Pictures add bipartite
            variations (DDIM-inverted x_T decoded at eta 0.5 and 1).
  single    one 32x32 decoder (levels (1, 2, 2)) and no upsampler.
  paper     karlo's decoder_900M_vit_l: 64x64, 320 channels, levels (1, 2, 3, 4), 3
            blocks, attention at 32, 16 and 8 with 1536-wide tokens, learned
            variances: 893,318,086 parameters (training it needs learn_sigma False).
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
unclip = config_file.module_beside(__file__, "unclip_base")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"clip": "clip_mnist", "prior": "unclip_prior_mnist",
                 "upsampler": "unclip_upsampler_mnist"}


def get_config(arg=None):
  variants = common.parse_arg(arg, "unclip_mnist", {"tiny", "single", "paper"})
  c = unclip.base("decoder")
  c.eval = common.mnist_classifier_eval(
      batch_size=100, num_examples=500, metrics=("fid", "caption_accuracy"),
      num_samples=500, sample_batch_size=100, reference_split="test",
      guidance_scales=(1.0, 3.0, 8.0), shuffled_baseline=True,
      # with the prior stage: the grid prior (1, 4) x decoder guidance_scales
      prior_guidance_scales=(1.0, 4.0),
      # K variations of each of the first test images, read by the MNIST classifier
      variation_sources=100, variation_seeds=4)
  if "single" in variants:
    c.model.decoder.resolution = 32
    c.model.decoder.unet.update(channel_mult=(1, 2, 2), attention_resolutions=(2, 4))
    del c.stages["upsampler"]
  if "paper" in variants:
    unclip.paper(c)
  if "tiny" in variants:
    unclip.tiny(c)
    c.eval.update(guidance_scales=(1.0, 3.0), shuffled_baseline=False,
                  variation_sources=4, variation_seeds=2)
  return c
