r"""Conditional GAN (Mirza & Osindero 2014) on MNIST-5k: the one-hot digit class joins
the input of both players.

  python -m jaxgen.main --config=configs/cgan_mnist.py --workdir=/tmp/cgan_mnist

Variants (comma-separated after the colon):
  (default) MLP players as in the paper's MNIST experiment: ReLU generator
            [z, y] -> 256 -> 512 -> 1024 -> 784 (tanh; BatchNorm on the last two
            hidden layers), LeakyReLU(0.2) discriminator [x, y] -> 512 -> 256 -> 1
            with dropout 0.3 (without BatchNorm and dropout, the generator collapsed
            to one image for every class), non-saturating loss, Adam 2e-4 beta1
            0.5, batch 64, EMA 0.999; 10,000 steps, 4.7 min on a shared 2-core CPU:
            clean digits of the asked class (FID 38, IS 8.4 from 1,000 samples in
            the MNIST classifier's features). The pictures have one row per class.
  dcgan     the DCGAN players of configs/dcgan_mnist.py instead (the label as
            constant input channels of the discriminator).
  tiny      seconds: for tests.
"""
import ml_collections


def get_config(arg=None):
  variants = set(filter(None, (arg or "").split(",")))
  unknown = variants - {"tiny", "dcgan"}
  if unknown:
    raise ValueError(f"Unknown variant(s) {sorted(unknown)} of cgan_mnist; use tiny, "
                     f"dcgan.")
  c = ml_collections.ConfigDict()
  c.family = "gan"
  c.seed = 0
  c.data = ml_collections.ConfigDict(dict(
      name="mnist5k", scale="symmetric", binarize="", dequantize=False, resize=(),
      random_flip=False, tfds_data_dir=""))
  c.model = ml_collections.ConfigDict(dict(
      arch="mlp", latent_dim=100, hidden_g=(256, 512, 1024), hidden_d=(512, 256),
      g_batch_norm=True, d_dropout=0.3, ngf=32, ndf=32, upsample="transpose",
      d_batch_norm=True, conditioning="cgan", num_classes=10))
  c.gan = ml_collections.ConfigDict(dict(
      loss="nonsaturating", d_steps=1, r1_gamma=0.0, aux_weight=1.0))
  player = dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, eps=1e-8,
                schedule="constant", warmup_steps=0, grad_clip_norm=0.0)
  c.optim = ml_collections.ConfigDict(dict(
      generator=dict(player), discriminator=dict(player), ema_decay=0.999))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=64, num_steps=10_000, log_every=100, checkpoint_every=2000,
      sample_every=2000, keep_checkpoints=3, num_samples=100))
  c.eval = ml_collections.ConfigDict(dict(
      split="test", batch_size=100, num_examples=0,
      # sample metrics: 1,000 samples against the 4,500 training digits, in the
      # features of the shipped MNIST classifier
      metrics=("fid", "is"), feature_net="mnist_classifier", num_samples=1000,
      reference_split="train", sample_batch_size=100))
  if "dcgan" in variants:
    c.model.update(arch="dcgan", d_dropout=0.0)
    c.train.num_steps = 3000
  if "tiny" in variants:
    c.model.update(latent_dim=8, hidden_g=(16, 16), hidden_d=(16,), ngf=4, ndf=4)
    c.train.update(batch_size=8, num_steps=2, log_every=1, checkpoint_every=2,
                   sample_every=2, num_samples=10)
    c.eval.update(batch_size=8, num_examples=16, num_samples=100, sample_batch_size=50)
  return c
