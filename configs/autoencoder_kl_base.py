"""The autoencoder_kl family's fields and their defaults: the default of
configs/autoencoder_kl_mnist.py. ``model`` holds CompVis' ``ddconfig`` (its field
names) and ``embed_dim``; ``loss`` the ``LPIPSWithDiscriminator`` settings (CompVis'
names; ``disc_ndf`` is taming's ``VQLPIPSWithDiscriminator`` name for the PatchGAN's
width, 64 in both; ``learn_logvar`` and the weights files are jaxgen's). Not a
runnable config: ``base()`` is what the family's configs start from; ``tiny(c)`` is
what their ``tiny`` variants share."""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def captions_data() -> ml_collections.ConfigDict:
  """``config.data``: mnist5k_captions' 32x32 canvases in [0, 1], with the captions a
  text-conditional latent diffusion over this stage reads (as configs/clip_mnist.py)."""
  return common.image_data("mnist5k_captions", context_length=16, derived_seed=0,
                           layouts=1)


def player(learning_rate: float) -> dict:
  """One of the two Adams of CompVis' ``configure_optimizers``: betas (0.5, 0.9), a
  constant rate."""
  return common.adam(learning_rate=learning_rate, b1=0.5, b2=0.9, schedule="constant",
                     warmup_steps=0)


def base() -> ml_collections.ConfigDict:
  return common.config(
      "autoencoder_kl",
      data=captions_data(),
      model=ml_collections.ConfigDict(dict(
          ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, attn_resolutions=(),
          z_channels=4, double_z=True, embed_dim=4, resolution=32, in_channels=1,
          out_ch=1, dropout=0.0)),
      loss=ml_collections.ConfigDict(dict(
          disc_start=500, kl_weight=1e-6, disc_weight=0.5, disc_factor=1.0,
          disc_num_layers=2, disc_ndf=32, disc_loss="hinge", logvar_init=0.0,
          learn_logvar=True,
          # No VGG16 weights offline: no perceptual term. With the files in the
          # weights cache (jaxgen/weights/lpips.py), set 1.0 as the reference.
          perceptual_weight=0.0, vgg_weights="", lpips_weights="")),
      optim=ml_collections.ConfigDict(dict(
          autoencoder=player(4.5e-4), discriminator=player(4.5e-4), ema_decay=0.0)),
      train=common.train(batch_size=16, num_steps=1000, log_every=50,
                         checkpoint_every=1000, sample_every=500, num_samples=16),
      # rFID: the reconstructions of the 500 test canvases against the test canvases
      # themselves, in the MNIST classifier's features. lpips: also LPIPS of the
      # reconstructions (needs the weights files).
      eval=common.mnist_classifier_eval(
          metrics=("fid", "class_accuracy_recon"), num_samples=500, reference_split="test",
          sample_batch_size=100, lpips=False))


def tiny(c: ml_collections.ConfigDict) -> None:
  """Shrinks ``c`` to seconds, for tests: one block per level, a small PatchGAN from
  step 1 (the discriminator trains in the conformance run's second half)."""
  c.model.update(num_res_blocks=1, ch_mult=(1, 1))
  c.loss.update(disc_start=1, disc_ndf=8, disc_num_layers=2)
  c.train.update(common.tiny_train())
  c.eval.update(batch_size=8, num_examples=16, num_samples=16, sample_batch_size=8,
                metrics=("fid",))
