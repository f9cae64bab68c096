"""The pixelcnn family's fields and their defaults: the MNIST-5k default of
configs/pixelcnn_mnist.py (PixelCNN with a 7x7 mask-A convolution, 5 residual blocks
of width 32, a Bernoulli per pixel on dynamically binarised digits). Not a runnable
config: ``base()`` is what the family's configs start from (configs/
pixelcnn_prior_mnist.py's too: the same networks over a code grid); ``tiny(c)`` is
what their ``tiny`` variants share."""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def base() -> ml_collections.ConfigDict:
  return common.config(
      "pixelcnn",
      data=common.mnist5k_data(binarize="dynamic"),
      model=ml_collections.ConfigDict(dict(
          arch="pixelcnn", likelihood="bernoulli", features=32, num_layers=5,
          first_kernel_size=7, kernel_size=3, output_features=32, first_mask="A",
          num_classes=0, num_mix=10, dropout=0.0, num_scales=3)),
      optim=common.optim(grad_clip_norm=1.0),
      train=common.train(batch_size=32, sample_every=2000),
      complete=ml_collections.ConfigDict(dict(
          mask="top_half", num_completions=4, num_images=8)),
      # Sampling a 28x28 image takes 784 network evaluations: 256 samples for the
      # sample metrics.
      eval=common.mnist_classifier_eval(metrics=common.DIGIT_METRICS, num_samples=256,
                                        sample_batch_size=128))


def tiny(c: ml_collections.ConfigDict, **train) -> None:
  """Shrinks ``c``'s training, completion and evaluation to seconds, for tests
  (``common.tiny_train(**train)``); each config shrinks its own network."""
  c.train.update(common.tiny_train(**train))
  c.optim.warmup_steps = 1
  c.complete.update(num_completions=2, num_images=2)
  c.eval.update(batch_size=8, num_examples=16, num_samples=16, sample_batch_size=8,
                metrics=common.tiny_metrics(c.eval.metrics))
