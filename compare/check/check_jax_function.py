"""``check_jax_function``: a hand-written backward in JAX (a ``jax.custom_vjp`` function, or any function whose
gradient is written by hand) against JAX's own differentiation of the plain composition.

``reference`` defaults to the custom_vjp's own primal (``fn.fun``): the same forward, differentiated by JAX's
autodiff instead of the user's ``bwd``. Per draw of the inputs (a step of the report), in ``dtype``:

* ``forward``: ``out`` (``out0``, ``out1``, ... for a tuple);
* ``grad``: ``d<name>`` of every input (named as ``reference``'s arguments), the vector-Jacobian product of a
  seeded upstream gradient (``jax.vjp`` on both sides).

The draws: the inputs as given, then seeded standard normal ones of the same shapes. JAX is imported when the
function is called: the rest of ``compare`` works without it (the ``[jax]`` extra).
"""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from compare.check.check_function import input_names
from compare.check.report import Report, saves_report
from compare.core import spread
from compare.core.checks import Checks

JAX_DRAWS = ("given", "normal")


def _outputs(value: Any) -> tuple:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


@saves_report  # report_dir=: the report as report.html there (compare.check.report)
def check_jax_function(
    fn: Callable,
    *inputs: Any,
    reference: Callable | None = None,
    dtype: str = "float64",
    draws: Sequence[str] = JAX_DRAWS,
    seed: int = 0,
) -> Report:
    """Check ``fn``'s backward (a ``jax.custom_vjp`` function, say) against JAX's differentiation of ``reference``
    (default: the custom_vjp's primal, ``fn.fun``) on ``inputs`` (arrays: NumPy or ``jax.Array``) in ``dtype``."""
    import jax  # the [jax] extra, imported only here
    import jax.numpy as jnp

    import jax_ref  # noqa: F401 (jax_enable_x64: float64 inputs stay float64)

    reference = reference if reference is not None else getattr(fn, "fun", None)
    if reference is None:
        raise TypeError("check_jax_function: give reference=, the plain function (fn is not a jax.custom_vjp)")
    given = [jnp.asarray(np.array(x), getattr(jnp, dtype)) for x in inputs]
    names = [f"d{name}" for name in input_names(reference, len(given))]
    report = Report("function", steps=len(draws))
    rng = np.random.default_rng(seed)
    for step, kind in enumerate(draws, start=1):
        values = given if kind == "given" else [jnp.asarray(rng.standard_normal(x.shape), x.dtype) for x in given]
        ref_outs, ref_vjp = jax.vjp(lambda *xs: _outputs(reference(*xs)), *values)
        outs, vjp = jax.vjp(lambda *xs: _outputs(fn(*xs)), *values)
        upstream_rng = np.random.default_rng(seed + step)
        upstream = tuple(jnp.asarray(upstream_rng.standard_normal(o.shape), o.dtype) for o in ref_outs)
        checks = Checks(step, dtype)
        for i, ref in enumerate(ref_outs):
            name = "out" if len(ref_outs) == 1 else f"out{i}"
            checks.add("forward", name, np.asarray(outs[i]) if i < len(outs) else None, np.asarray(ref))
        if len(outs) == len(ref_outs):
            for name, mine, ref in zip(names, vjp(upstream), ref_vjp(upstream), strict=True):
                checks.add("grad", name, np.asarray(mine), np.asarray(ref))
        checks.rejudge(lambda k, values=values, upstream=upstream: _again(k, reference, values, upstream, names))
        report.checks.extend(checks.collect())
    return report


def _again(k: int, reference: Callable, values: list, upstream: tuple, names: list[str]) -> dict:
    """JAX's outputs and vector-Jacobian products of ``reference`` again, inputs and upstream moved by an ulp
    (``compare.core.spread``), as the checks name them."""
    import jax
    import jax.numpy as jnp

    moved = spread.Perturbation(k)
    xs = [jnp.asarray(moved(np.asarray(x)), x.dtype) for x in values]
    outs, vjp = jax.vjp(lambda *a: _outputs(reference(*a)), *xs)
    grads = vjp(tuple(jnp.asarray(moved(np.asarray(u)), u.dtype) for u in upstream))
    labels = ["out"] if len(outs) == 1 else [f"out{i}" for i in range(len(outs))]
    tensors = {("forward", label): np.asarray(out) for label, out in zip(labels, outs, strict=True)}
    return tensors | {("grad", name): np.asarray(grad) for name, grad in zip(names, grads, strict=True)}
