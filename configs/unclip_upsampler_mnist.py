r"""The unCLIP upsampler (Ramesh et al. 2022, section 2.1; kakaobrain/karlo's
super-resolution U-Net) on mnist5k_captions: 16x16 -> 32x32 canvases, the 16x16
condition blurred in training so that it takes the decoder's samples.

  python -m jaxgen.main --config=configs/unclip_upsampler_mnist.py --workdir=/tmp/unclip_up
  python -m jaxgen.main --config=configs/unclip_upsampler_mnist.py:paper --mode=summary
The decoder it follows: configs/unclip_mnist.py (--config.stages.upsampler).

Variants (comma-separated after the colon):
  (default) guided-diffusion's U-Net without attention (32 channels, levels (1, 2, 2),
            up/down-sampling ResBlocks) over the noised canvas and its 2x2 block means,
            bilinearly enlarged, Gaussian-blurred with sigma in [0.4, 0.6] in
            training; T = 1000 cosine, v-prediction, 25 steps at DDIM eta 1.
            eval.json: the v MSE; PSNR and SSIM of samples against the canvases
            whose 16x16 versions they enlarge.
  paper     karlo's improved_sr_64_256 U-Net (320 channels, levels (1, 2, 3, 4), 3
            blocks, no attention): 691,579,523 parameters (karlo runs two of them).
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
unclip = config_file.module_beside(__file__, "unclip_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "unclip_upsampler_mnist", {"tiny", "paper"})
  c = unclip.base("upsampler")
  c.train.num_steps = 2000
  # Stochastic steps (eta 1: ancestral sampling over 25 respaced steps, as karlo's
  # upsamplers sample): at eta 0 the noise that the network leaves in its x0 over
  # t = 300..900 stays in the image (12% of the background pixels above 0.1, PSNR
  # 23.2 dB); eta 1 redraws it (1.3%, 26.3 dB; 64 test canvases, the default run).
  c.sample.eta = 1.0
  c.eval = common.mnist_classifier_eval(
      batch_size=100, num_examples=500, metrics=("psnr", "ssim"), paired_key="image",
      num_samples=200, sample_batch_size=100, reference_split="test")
  if "paper" in variants:
    unclip.paper(c)
  if "tiny" in variants:
    unclip.tiny(c)
    c.eval.metrics = ()
  return c
