r"""CompVis' kl-f8 autoencoder (the first stage of LDM-KL-8 and of Stable Diffusion v1):
256x256x3 -> 32x32x4 latents.

  python -m jaxgen.main --config=configs/autoencoder_kl_f8.py:paper --mode=summary
  python -m jaxgen.main --config=configs/autoencoder_kl_f8.py:paper --workdir=/tmp/kl_f8

Needs ImageNet through tensorflow-datasets (``imagenet2012``), and LPIPS' weights
(torchvision's vgg16-397923af.pth and lpips' v0.1 vgg.pth) in the weights cache
(jaxgen/weights/lpips.py).

Variants (comma-separated after the colon):
  paper     (= default) models/first_stage_models/kl-f8/config.yaml and
            configs/autoencoder/autoencoder_kl_32x32x4.yaml of CompVis/latent-diffusion:
            ch 128, ch_mult (1, 2, 4, 4), 2 ResNet blocks, no attention resolutions
            (the mid block's attention only), z_channels 4, embed_dim 4: 83,653,863
            parameters. The loss: disc_start 50001, kl_weight 1e-6, disc_weight 0.5,
            perceptual weight 1 (LPIPS), the 3-layer PatchGAN of 64 filters, hinge;
            the logvar stays at 0 (CompVis' optimisers leave it out). Adam (0.5, 0.9)
            at base_learning_rate 4.5e-6 scaled as their main.py scales it (batch 12 x
            accumulate_grad_batches 2 x 1 GPU): 1.08e-4, here batch 24. The reference
            sets no number of steps (training runs until stopped).
  tiny      seconds, on the offline 32x32 canvases (a kl-f8 layout of 32 channels,
            4x4x4 latents, no perceptual term): for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
aekl = config_file.module_beside(__file__, "autoencoder_kl_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "autoencoder_kl_f8", {"tiny", "paper"})
  c = aekl.base()
  c.data = common.image_data("imagenet2012", resize=(256, 256), random_flip=True)
  c.model.update(ch=128, ch_mult=(1, 2, 4, 4), num_res_blocks=2, attn_resolutions=(),
                 z_channels=4, double_z=True, embed_dim=4, resolution=256,
                 in_channels=3, out_ch=3, dropout=0.0)
  c.loss.update(disc_start=50001, kl_weight=1e-6, disc_weight=0.5, disc_num_layers=3,
                disc_ndf=64, disc_loss="hinge", perceptual_weight=1.0,
                learn_logvar=False)
  c.optim.autoencoder = aekl.player(4.5e-6 * 12 * 2)
  c.optim.discriminator = aekl.player(4.5e-6 * 12 * 2)
  c.train.update(batch_size=24, num_steps=500_000, log_every=100,
                 checkpoint_every=10_000, sample_every=10_000)
  c.eval = common.inception_eval(split="validation", num_examples=1000,
                                 metrics=("fid",), num_samples=50_000,
                                 reference_split="validation", sample_batch_size=100,
                                 lpips=True)
  if "tiny" in variants:
    c.data, c.eval = aekl.captions_data(), aekl.base().eval
    c.loss.perceptual_weight = 0.0
    aekl.tiny(c)
    c.model.update(ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1, resolution=32,
                   in_channels=1, out_ch=1)
  return c
