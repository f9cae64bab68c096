"""The conformance contract's multi-device part, for every family in
jaxgen/families/ (the rest: tests/test_conformance.py): the first half of
each family's tiny run, trained again on 4 fake CPU devices from the same data and
random streams, reaches the state of 1 device; a batch that does not divide over the
devices is refused; and ``generate`` returns images in [0, 1] of the data's shape for
the conditioning the family takes.

The families run in reverse order: under pytest-xdist this file and
test_conformance.py sit on different workers, and the tiny runs they share
(``tiny_runs``) are then trained from both ends at once instead of one worker waiting
for the other's.
"""
import pytest

import conformance
from conftest import FAMILIES, load_config, tiny_config_of


@pytest.mark.parametrize("family", FAMILIES[::-1])
def test_four_devices_update_as_one_and_generate_in_range(family, tiny_runs):
  """The first half of the tiny run (1 device), trained again on 4 devices from the
  same data and random streams, reaches the same state; then generate."""
  name = tiny_config_of(family)
  conformance.check_four_devices(tiny_runs(name), load_config(name, "tiny"))
