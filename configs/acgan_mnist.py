r"""AC-GAN (Odena et al. 2017) on MNIST-5k: the generator gets the class, the
discriminator also predicts it, and both players add the auxiliary classification
loss.

  python -m jaxgen.main --config=configs/acgan_mnist.py --workdir=/tmp/acgan_mnist

Variants (comma-separated after the colon):
  (default) DCGAN players as configs/dcgan_mnist.py (ngf = ndf = 32) with a class
            head on the discriminator, auxiliary loss weight 1, non-saturating loss,
            Adam 2e-4 beta1 0.5, batch 64, EMA 0.99; 3,000 steps at 13-19 steps/s,
            4.1 min on a shared 2-core CPU: digits of the asked class, some
            malformed (FID 90, IS 8.2 from 1,000 samples in the MNIST classifier's
            features); the auxiliary classifier labels 95.8% of the test digits
            right (eval.json: aux_accuracy). The pictures have one row per class.
  tiny      seconds: for tests.
"""
import ml_collections


def get_config(arg=None):
  variants = set(filter(None, (arg or "").split(",")))
  unknown = variants - {"tiny"}
  if unknown:
    raise ValueError(f"Unknown variant(s) {sorted(unknown)} of acgan_mnist; use tiny.")
  c = ml_collections.ConfigDict()
  c.family = "gan"
  c.seed = 0
  c.data = ml_collections.ConfigDict(dict(
      name="mnist5k", scale="symmetric", binarize="", dequantize=False, resize=(),
      random_flip=False, tfds_data_dir=""))
  c.model = ml_collections.ConfigDict(dict(
      arch="dcgan", latent_dim=100, ngf=32, ndf=32, upsample="transpose",
      d_batch_norm=True, conditioning="acgan", num_classes=10))
  c.gan = ml_collections.ConfigDict(dict(
      loss="nonsaturating", d_steps=1, r1_gamma=0.0, aux_weight=1.0))
  player = dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, eps=1e-8,
                schedule="constant", warmup_steps=0, grad_clip_norm=0.0)
  # EMA 0.99: over 3,000 steps, 0.999 kept too much of the early generator (FID 255
  # against 165 without EMA in dcgan_mnist).
  c.optim = ml_collections.ConfigDict(dict(
      generator=dict(player), discriminator=dict(player), ema_decay=0.99))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=64, num_steps=3000, log_every=50, checkpoint_every=1000,
      sample_every=1000, keep_checkpoints=3, num_samples=100))
  c.eval = ml_collections.ConfigDict(dict(
      split="test", batch_size=100, num_examples=0,
      # sample metrics: 1,000 samples against the 4,500 training digits, in the
      # features of the shipped MNIST classifier
      metrics=("fid", "is"), feature_net="mnist_classifier", num_samples=1000,
      reference_split="train", sample_batch_size=100))
  if "tiny" in variants:
    c.model.update(latent_dim=8, ngf=4, ndf=4)
    c.train.update(batch_size=8, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2, num_samples=10)
    c.eval.update(batch_size=8, num_examples=16, num_samples=100, sample_batch_size=50)
  return c
