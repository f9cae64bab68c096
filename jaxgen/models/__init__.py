"""Pure Flax Linen modules: each takes plain typed arguments, never a config."""
