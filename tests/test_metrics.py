"""The one-pass helpers behind the comparison give the numbers of their plain definitions."""

import math

import numpy as np
import pytest
import torch

from compare import metrics, scales

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


@pytest.mark.parametrize("amplification", [1.0, 2.5])
def test_amplification_scales_the_reference_as_an_explicit_floor_would(amplification):
    reference = RNG.standard_normal((32, 16))
    manual = reference + 1e-12 * RNG.standard_normal(reference.shape)
    floor = amplification * float(np.max(np.abs(reference)))
    assert metrics.diff(manual, reference, amplification=amplification) == metrics.diff(manual, reference, floor)
