"""The one-pass helpers behind the comparison give the numbers of their plain definitions."""

import math

import numpy as np
import pytest
import torch

from compare.core import metrics, scales

RNG = np.random.default_rng(0)
ARRAYS = [RNG.standard_normal((64, 48)), -np.abs(RNG.standard_normal(7)), np.array(3.0), np.zeros(5)]


@pytest.mark.parametrize("array", ARRAYS)
def test_amax_is_the_largest_magnitude(array):
    assert metrics.amax(array) == np.max(np.abs(array))
    assert scales.amax(torch.from_numpy(array)) == float(torch.from_numpy(array).abs().max())


def test_amax_is_nan_when_any_element_is():
    array = np.array([1.0, np.nan, -3.0])
    assert math.isnan(metrics.amax(array))
    assert math.isnan(scales.amax(torch.from_numpy(array)))
    assert scales.amax(None) == scales.amax(torch.zeros(0)) == 0.0


def test_a_pass_amax_takes_each_tensor_once_and_tells_tensors_apart():
    """``scales.Amax``: the same tensor read again is not measured again; another tensor (an equal-sized one,
    a NumPy array) is measured on its own; the floors built with it are those built with ``amax``."""
    a, b = torch.from_numpy(ARRAYS[0].copy()), torch.from_numpy(2.0 * ARRAYS[0])
    measure = scales.Amax()
    assert measure(a) == scales.amax(a) and measure(b) == scales.amax(b) == 2.0 * scales.amax(a)
    assert measure(ARRAYS[1]) == scales.amax(ARRAYS[1]) and measure(None) == 0.0
    a.mul_(3.0)  # a pass's tensors do not change: a second reading is the first one's
    assert measure(a) == scales.amax(b) / 2.0
    linear = torch.nn.Linear(48, 5).double()
    assert scales.forward_floor(linear, b, 0.0, scales.Amax()) == scales.forward_floor(linear, b)
    assert scales.param_grad_floors(linear, b, 0.5, 1.0, scales.Amax()) == scales.param_grad_floors(linear, b, 0.5, 1.0)


@pytest.mark.parametrize("amplification", [1.0, 2.5])
def test_amplification_scales_the_reference_as_an_explicit_floor_would(amplification):
    reference = RNG.standard_normal((32, 16))
    manual = reference + 1e-12 * RNG.standard_normal(reference.shape)
    floor = amplification * float(np.max(np.abs(reference)))
    assert metrics.diff(manual, reference, amplification=amplification) == metrics.diff(manual, reference, floor)


def plain_diff(manual: np.ndarray, reference: np.ndarray) -> tuple[float, float, tuple[int, ...]]:
    """The definitions in compare.core.metrics, read off whole arrays."""
    delta = np.abs(manual.astype(np.float64) - reference.astype(np.float64))
    index = np.unravel_index(int(np.argmax(delta)), delta.shape)
    return float(delta.max()), float(delta.max() / np.max(np.abs(reference))), tuple(int(i) for i in index)


BLOCKED = [  # (shape, where the largest difference is put): tensors of several blocks, the worst in any of them
    ((3 * metrics.BLOCK + 17,), 0),
    ((3 * metrics.BLOCK + 17,), 2 * metrics.BLOCK + 5),
    ((3 * metrics.BLOCK + 17,), 3 * metrics.BLOCK + 16),  # in the short last block
    ((700, 300), metrics.BLOCK),  # the first element of the second block
    ((metrics.BLOCK,), metrics.BLOCK - 1),
]


@pytest.mark.parametrize(("shape", "worst"), BLOCKED)
def test_blockwise_diff_gives_the_whole_arrays_numbers(shape, worst):
    reference = RNG.standard_normal(shape)
    reference.flat[RNG.integers(reference.size)] = -50.0  # the scale, somewhere else
    manual = reference + 1e-12 * RNG.standard_normal(shape)
    manual.flat[worst] += 1e-9
    result = metrics.diff(manual, reference)
    assert (result.max_abs, result.max_rel, result.worst_index) == plain_diff(manual, reference)
    assert np.ravel_multi_index(result.worst_index, shape) == worst


def test_ties_name_the_first_worst_element_as_argmax_does():
    reference = np.zeros(2 * metrics.BLOCK)
    manual = reference.copy()
    manual[[10, metrics.BLOCK + 10]] = 1.0
    assert metrics.diff(manual, reference).worst_index == (10,)


@pytest.mark.parametrize("where", [3, metrics.BLOCK + 3])
@pytest.mark.parametrize(
    ("value", "side", "problem"), [(np.nan, 0, "nonfinite:manual"), (np.inf, 1, "nonfinite:torch")]
)
def test_a_nonfinite_element_in_any_block_names_its_side_and_index(where, value, side, problem):
    arrays = [RNG.standard_normal(2 * metrics.BLOCK), RNG.standard_normal(2 * metrics.BLOCK)]
    arrays[side][where] = value
    result = metrics.diff(*arrays)
    assert (result.problem, result.worst_index, result.max_rel) == (problem, (where,), np.inf)


def test_float32_tensors_are_subtracted_in_float64():
    """1e8 − 1e-3 rounds to 1e8 in float32; the difference must be taken after widening to float64."""
    reference = np.zeros(metrics.BLOCK + 1, dtype=np.float32)
    manual = reference.copy()
    manual[-1], reference[-1] = 1e8, 1e-3
    result = metrics.diff(manual, reference)
    assert result.max_abs == float(manual[-1]) - float(reference[-1]) != float(manual[-1] - reference[-1])
