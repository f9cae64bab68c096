"""The errors that mean "the user's input is wrong": the command line prints each as
one ``error:`` line (exit status 2) instead of a traceback."""


class ConfigError(ValueError):
  """One or more config fields are missing or have a bad value (raised by
  ``jaxgen.loop_config.check`` and by trainers built from a config that lacks a field
  they read)."""


class StageError(ValueError):
  """A frozen stage is missing, unfinished, of the wrong family, or changed."""
