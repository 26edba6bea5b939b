"""Every catalog mistake that can live in a user's own layer, loss or optimizer is caught and named by
the check_* tests; the two that live in the training loop (clipping, the scheduler's order) cannot be
written into a user's piece that the checker drives, and are left to ``backprop-parity run --inject``."""

import test_check_layer
import test_check_loss
import test_check_optimizer

from compare.faults.catalog import CATALOG

LOOP_ONLY = {
    "clip-each-tensor": "clipping is the training loop's, which check_optimizer and check_model run themselves",
    "schedule-stepped-before-update": "the checker steps the user's schedule itself, in torch's order",
}


def test_every_catalog_mistake_of_user_pieces_is_caught_and_named_by_a_check_test():
    named = {row[0] for row in test_check_layer.MISTAKES}
    named |= {row[0] for row in test_check_loss.MISTAKES} | {"softmax-without-max-shift"}
    named |= set(test_check_optimizer.SETTINGS)
    assert named | set(LOOP_ONLY) == set(CATALOG)
    assert not named & set(LOOP_ONLY)
