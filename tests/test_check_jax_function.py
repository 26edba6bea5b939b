"""``compare.check.check_jax_function.check_jax_function``: a ``jax.custom_vjp`` backward against JAX's own
differentiation of the same forward; a right backward passes, a wrong one fails at its gradient."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

from compare.check.check_jax_function import check_jax_function  # noqa: E402


def make_softplus(backward):
    @jax.custom_vjp
    def softplus(x):
        return jnp.logaddexp(x, 0.0)

    def fwd(x):
        return softplus(x), x

    def bwd(x, g):
        return (g * backward(x),)

    softplus.defvjp(fwd, bwd)
    return softplus


RIGHT = jax.nn.sigmoid  # d softplus / dx = σ(x)


@pytest.mark.parametrize(
    ("backward", "passes", "dtype"),
    [
        (RIGHT, True, "float64"),
        (RIGHT, True, "float32"),
        (lambda x: jax.nn.sigmoid(x) * (1 - jax.nn.sigmoid(x)), False, "float64"),  # σ' instead of σ
        (lambda x: jax.nn.sigmoid(-x), False, "float64"),  # a sign
    ],
)
def test_a_custom_vjp_is_checked_against_jax_grad(backward, passes, dtype):
    report = check_jax_function(make_softplus(backward), np.linspace(-3, 3, 7), dtype=dtype)
    assert report.passed is passes, str(report)
    if not passes:
        assert report.first_failure.tensor == "dx"


def test_a_plain_function_needs_its_reference():
    with pytest.raises(TypeError, match="reference="):
        check_jax_function(jnp.tanh, np.ones(3))
    assert check_jax_function(jnp.tanh, np.ones(3), reference=lambda x: jnp.sinh(x) / jnp.cosh(x)).passed
