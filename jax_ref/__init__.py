"""The JAX + optax twin of the manual MLP: a second reference framework beside ``torch_ref``.

The network is a pure function over a parameter pytree keyed by torch's ``state_dict`` names, in torch's
``(out, in)`` layout (``jax_ref.model``); its backward is ``jax.value_and_grad``; the optimizer is an optax
``GradientTransformation`` configured to compute torch's rule, or built from optax's own defaults
(``jax_ref.optim``); the learning-rate schedules come from ``optax.schedules`` (``jax_ref.schedules``).
State (optimizer, BatchNorm's running statistics) is explicit and returned, never mutated.

Importing this package turns on ``jax_enable_x64`` (``jax.config.update``): without it JAX silently
computes float64 arrays in float32, and a float64 parity run would compare float32 against float64.
Every array is still built with an explicit dtype, so float32 runs stay float32. ``compare`` imports this
package only when a run asks for the ``jax`` side: the checker works without JAX installed.
"""

import jax

jax.config.update("jax_enable_x64", True)

from jax_ref.optim import InexpressibleError, build_optimizer  # noqa: E402 (after the x64 switch)
from jax_ref.twin import JaxTwin, build_twin  # noqa: E402

__all__ = ["InexpressibleError", "JaxTwin", "build_optimizer", "build_twin"]
