"""CLIP (Radford et al. 2021) trained from scratch by contrastive learning:
``trainer.py`` (the towers of ``jaxgen/models/clip.py`` sized by the config, the
symmetric InfoNCE loss of ``jaxgen/losses.py`` with equal captions as positives, the
clamped temperature, the ``ConditioningEncoder`` stage protocol, the evaluation and
the pictures), ``zero_shot.py`` (prompts from the caption grammar of
``jaxgen/data/mnist5k_derived.py``). Configs: configs/clip_mnist.py. Tests:
tests/test_clip_family.py."""
