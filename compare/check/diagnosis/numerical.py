"""Name a departure without a catalog: measure how the user's tensor differs from torch's and say it in words.

When no known mistake reproduces the user's numbers, each failing tensor (the user's array against torch's)
is characterised by the first of these that fits, with the likely cause and a one-line fix:

* a shape that is torch's transposed, torch's with a size-1 axis kept or dropped, or torch's before a
  broadcast was reduced (a bias gradient not summed over the batch);
* zeros on every element where torch's is not (a term missing);
* a constant ratio, named when it is a known one: N (a mean's 1/N missing), 1/N (applied twice),
  n/(n−1) or its root (Bessel's correction), 2 or ½, C (the classes), N·C, −1 (a sign);
* an elementwise derivative confused with a sibling (``1 − h`` for ``1 − h²``, ``h`` for ``h(1 − h)``,
  the rule applied to the pre-activation), when the piece's input, output and upstream gradient are known;
* a departure only where a mask or the sign of the input says (a ReLU / dropout / clamp boundary);
* a departure confined to one row or one column.

Each ``Finding`` names the tensor, the measured evidence ("ratio 32.000 on every element") and the fix;
``diagnose`` turns the findings of a report's failing tensors (nearest the loss first) into a ``Diagnosis``.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from compare.check.report import Diagnosis

# A ratio, a derivative or a reduction "fits" when it explains all but this fraction of the departure:
# rounding leaves ~1e-7 (float32) of it; an approximate law (Bessel's factor with ε inside the root, off
# by ε/var ~ 1e-5) leaves less than 1e-2, and an unrelated difference leaves O(1).
FITS = 1e-2
EXACT = 1e-6  # a fit this close (relative to the tensor) holds "on every element", to rounding


@dataclass(frozen=True)
class Context:
    """What is known of the piece that made the tensors: the batch size ``batch`` (N), the number of classes
    or outputs ``classes`` (C), and for an elementwise piece its input ``x``, output ``out`` and upstream
    gradient ``dout``; ``masks``: named boolean masks of the input's shape (``"dropout's mask"``)."""

    batch: int | None = None
    classes: int | None = None
    x: np.ndarray | None = None
    out: np.ndarray | None = None
    dout: np.ndarray | None = None
    masks: Mapping[str, np.ndarray] = field(default_factory=dict)
    update: bool = False  # the tensors are an optimizer's updates (θ after − θ before), not gradients


@dataclass(frozen=True)
class Finding:
    tensor: str
    kind: str  # "ratio", "transpose", "axis", "unreduced", "zeros", "derivative", "boundary", "confined"
    evidence: str  # measured: "ratio 32.000 on every element"
    cause: str
    fix: str

    def line(self) -> str:
        return f"{self.tensor}: {self.evidence}: {self.cause}; fix: {self.fix}"


def _fit(user: np.ndarray, model: np.ndarray, reference: np.ndarray) -> float:
    """How much of the departure ``user − reference`` the model leaves unexplained (0: all explained)."""
    departure = float(np.max(np.abs(user - reference)))
    return float(np.max(np.abs(user - model))) / departure if departure > 0 else 0.0


def _exact(user: np.ndarray, model: np.ndarray) -> bool:
    scale = float(np.max(np.abs(model))) or 1.0
    return float(np.max(np.abs(user - model))) <= EXACT * scale


def ratios(context: Context) -> list[tuple[float, str, str, str]]:
    """(value, its name, the likely cause, the fix) of every constant a ratio is named by."""
    if context.update:
        return [(-1.0, "−1, a sign", "the update added instead of subtracted", "θ -= lr * update, not +=")]
    found = [
        (-1.0, "−1, a sign", "a sign flipped (the gradient of a subtraction, of −log, or an update added "
         "instead of subtracted)", "negate it: check the sign of each term of the chain rule"),
        (2.0, "2", "a factor 2 too many: the derivative of x² taken as 2x where the loss has ½ (or a "
         "term counted twice)", "drop the 2 (or put the ½ into the loss on both sides)"),
        (0.5, "½", "a factor 2 missing: ½ in the loss, or the 2 of x²'s derivative 2x left out",
         "multiply by 2 (or write the loss as torch does, without ½)"),
    ]  # fmt: skip
    n, c = context.batch, context.classes
    if n and n > 2:
        bessel = n / (n - 1)
        found += [
            (float(n), f"N = {n}, the batch size", "a mean's 1/N missing (a sum where torch averages over the "
             "batch)", f"divide by the batch size N = {n}, once (dscores /= N in the loss's gradient)"),
            (1.0 / n, f"1/N = 1/{n}", "the mean's 1/N applied twice (once in the loss's gradient and again "
             "in a layer)", "divide by N once, in the loss's gradient only"),
            (bessel, f"n/(n−1) = {bessel:.4f}, Bessel's correction", "an unbiased variance (n − 1) where "
             "torch uses the biased one (n)", "var = x.var(axis=0) (ddof=0, unbiased=False)"),
            (1 / bessel, f"(n−1)/n = {1 / bessel:.4f}, Bessel's correction", "a biased variance (n) where "
             "torch uses the unbiased one (n − 1)", "running_var from the unbiased variance: var·n/(n − 1)"),
            (math.sqrt(1 / bessel), f"√((n−1)/n) = {math.sqrt(1 / bessel):.4f}, Bessel's correction in a "
             "root", "the variance that normalises is the unbiased one (n − 1); torch normalises with the "
             "biased one (n)", "normalise with x.var(axis=0) (ddof=0, unbiased=False)"),
            (math.sqrt(bessel), f"√(n/(n−1)) = {math.sqrt(bessel):.4f}, Bessel's correction in a root",
             "the unbiased variance (n − 1) inside the normalising root", "normalise with the biased "
             "variance (ddof=0, unbiased=False)"),
        ]  # fmt: skip
    if c and c > 2:
        found += [
            (float(c), f"C = {c}, the number of classes", "a mean over the C outputs missing (a sum where "
             "torch averages every element)", f"divide by C = {c} as well (MSELoss averages over N·C)"),
            (1.0 / c, f"1/C = 1/{c}", "a mean over the C outputs where torch does not average them",
             f"do not divide by C = {c}"),
        ]  # fmt: skip
    if n and c and n > 1 and c > 1:
        found.append((float(n * c), f"N·C = {n * c}", "a sum over every element where torch averages",
                      f"divide by N·C = {n * c} (a mean over every element)"))  # fmt: skip
    return found


def _ratio(tensor: str, user: np.ndarray, reference: np.ndarray, context: Context) -> Finding | None:
    norm = float(np.sum(reference * reference))
    if norm == 0:
        return None
    k = float(np.sum(user * reference)) / norm
    misfit = _fit(user, k * reference, reference)
    if misfit > FITS or abs(k - 1) < 1e-12:
        return None
    exact = _exact(user, k * reference)
    where = "on every element" if exact else f"within {misfit:.1%} of the departure"
    # how precisely k is known: the misfit, or 0.1% of k − 1 (a law off by ε/var, as ε inside a root is)
    spread = max(abs(k) * 1e-9, 10 * misfit * abs(k - 1), 1e-3 * abs(k - 1))
    for value, name, cause, fix in ratios(context):
        if abs(k - value) <= spread:
            return Finding(tensor, "ratio", f"ratio {k:.3f} to torch's {where} (= {name})", cause, fix)
    if context.update:
        return Finding(tensor, "ratio", f"ratio {k:.4g} to torch's {where}", f"your step is {k:.4g}× torch's: a "
                       "learning rate of another value, or a factor in the update", "use torch's lr (or pass "
                       "yours to the twin), and check each factor of the update")  # fmt: skip
    return Finding(
        tensor, "ratio", f"ratio {k:.4g} to torch's {where}", "a constant factor: a scale, a learning rate or a "
        "normalisation applied once too often or not at all", f"find the constant {k:.4g} and remove it",
    )  # fmt: skip


def _shape(tensor: str, user: np.ndarray, reference: np.ndarray) -> Finding | None:
    """A tensor of another shape that is torch's transposed, with an axis kept or dropped, or unreduced."""
    got, want = f"shape {user.shape} against torch's {reference.shape}", reference.shape
    if user.ndim == 2 and user.shape == reference.T.shape:
        same = _exact(user.T, reference)
        return Finding(tensor, "transpose", got + (": its transpose is torch's" if same else ""), "the "
                       "product's operands in the wrong order or layout (x.T @ dout against dout.T @ x)",
                       "transpose it (dW = dout.T @ x for torch's (out, in); x.T @ dout for (in, out))")  # fmt: skip
    if user.size == reference.size and np.squeeze(user).shape == np.squeeze(reference).shape:
        kept = user.ndim > reference.ndim
        return Finding(tensor, "axis", got + f": a size-1 axis {'kept' if kept else 'dropped'}", "a reduction "
                       f"with keepdims={kept} (or a missing reshape)", f"reshape to {want} "
                       f"({'sum(axis=0) without keepdims' if kept else 'keepdims=True'})")  # fmt: skip
    summed = _reduced(user, want)
    if summed is None:
        return None
    if _exact(summed, reference):
        return Finding(tensor, "unreduced", got + ": its sum over the broadcast axes is torch's", "a broadcast "
                       "operand's gradient left at the output's shape (a bias gradient not summed over the "
                       "batch)", "sum over the broadcast axes: db = dout.sum(axis=0)")  # fmt: skip
    return None


def _reduced(user: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``user`` summed over the axes a broadcast to its shape added or stretched, or ``None`` when ``shape``
    does not broadcast to ``user``'s."""
    lead = user.ndim - len(shape)
    if lead < 0 or any(b not in (1, a) for a, b in zip(user.shape[lead:], shape, strict=True)):
        return None
    stretched = tuple(lead + i for i, (a, b) in enumerate(zip(user.shape[lead:], shape, strict=True)) if b == 1 != a)
    return user.sum(axis=stretched, keepdims=True).sum(axis=tuple(range(lead))).reshape(shape)


# An elementwise piece's derivative, written from its input x or its output h: (how it reads, the rule).
DERIVATIVES: tuple[tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]], ...] = (
    ("1 − h² (tanh's, from its output)", lambda x, h: 1 - h * h),
    ("1 − h", lambda x, h: 1 - h),
    ("h·(1 − h) (the sigmoid's, from its output)", lambda x, h: h * (1 - h)),
    ("h", lambda x, h: h),
    ("1 − x² (tanh's rule on the pre-activation x)", lambda x, h: 1 - x * x),
    ("x·(1 − x) (the sigmoid's rule on the pre-activation x)", lambda x, h: x * (1 - x)),
    ("σ(x)", lambda x, h: 1 / (1 + np.exp(-x))),
    ("1[x > 0] (ReLU's)", lambda x, h: (x > 0).astype(float)),
    ("1[x ≥ 0]", lambda x, h: (x >= 0).astype(float)),
    ("1 (the identity's)", lambda x, h: np.ones_like(x)),
)


def _derivative(tensor: str, user: np.ndarray, reference: np.ndarray, context: Context) -> Finding | None:
    """``user = dout · f(x, h)`` for a sibling ``f`` of the rule torch's numbers follow."""
    x, h, dout = context.x, context.out, context.dout
    if x is None or h is None or dout is None or not (x.shape == h.shape == dout.shape == user.shape):
        return None
    with np.errstate(all="ignore"):
        made = [(name, dout * rule(x, h)) for name, rule in DERIVATIVES]
    mine = next((name for name, value in made if np.all(np.isfinite(value)) and _exact(user, value)), None)
    theirs = next((name for name, value in made if np.all(np.isfinite(value)) and _exact(reference, value)), None)
    if mine is None or (theirs is None and mine.startswith("1 (")):
        return None  # the identity against an unknown rule: no elementwise op, a backward left out
    versus = f", where torch's is {theirs}" if theirs is not None else ""
    rule = theirs.partition(" (")[0] if theirs is not None else "torch's derivative"
    return Finding(
        tensor,
        "derivative",
        f"your derivative is {mine.partition(' (')[0]} on every element{versus}",
        f"an elementwise derivative confused with a sibling ({mine})",
        f"dx = dout * ({rule})",
    )


def _boundary(tensor: str, user: np.ndarray, reference: np.ndarray, context: Context) -> Finding | None:
    """The departure lies only where a mask or the input's sign says (a kink, a dropout mask)."""
    departs = _departs(user, reference)
    if not departs.any() or departs.all():
        return None
    zero = " (yours is 0 there)" if np.all(user[departs] == 0) else ""
    masks: list[tuple[str, np.ndarray, str, str]] = []
    if context.x is not None and context.x.shape == user.shape:
        x = context.x
        masks += [
            ("the input is exactly 0", x == 0, "the derivative at the kink (torch's ReLU takes 0 at x = 0, its "
             "clamp 1 inside [min, max])", "mask = x > 0, strictly (clamp: min <= x <= max)"),
            ("the input is negative", x < 0, "the negative side of a ReLU / LeakyReLU / clamp: its slope there",
             "on x < 0 the derivative is 0 (ReLU) or negative_slope (LeakyReLU)"),
            ("the input is positive", x > 0, "the positive side of a ReLU / clamp: its slope there",
             "on x > 0 the ReLU's derivative is 1"),
        ]  # fmt: skip
    for name, mask in context.masks.items():
        if mask.shape == user.shape:
            masks += [
                (f"{name} dropped a unit", ~mask, "the mask not applied in the backward",
                 "dx = dout * mask / (1 - p), the forward's mask"),
                (f"{name} kept a unit", mask, "the kept units' scale 1/(1 − p)", "scale by 1/(1 - p), as torch"),
            ]  # fmt: skip
    for name, mask, cause, fix in masks:
        if mask.any() and not mask.all() and not np.any(departs & ~mask):
            count = f"{int(departs.sum())} of {departs.size} elements"
            return Finding(tensor, "boundary", f"departs only where {name}: {count}{zero}", cause, fix)
    return _confined(tensor, departs, zero)


def _confined(tensor: str, departs: np.ndarray, zero: str) -> Finding | None:
    if departs.ndim != 2:
        return None
    rows, cols = np.flatnonzero(departs.any(axis=1)), np.flatnonzero(departs.any(axis=0))
    for axis, where, total in (("row", rows, departs.shape[0]), ("column", cols, departs.shape[1])):
        if len(where) == 1 and total > 1:
            return Finding(tensor, "confined", f"departs only in {axis} {where[0]} of {total}{zero}", f"one "
                           f"{axis} handled apart: an index off by one, a loop or slice that stops short, one "
                           "sample or unit (a label, a class) treated differently",
                           f"look at what your code does to {axis} {where[0]} alone")  # fmt: skip
    return None


def _departs(user: np.ndarray, reference: np.ndarray) -> np.ndarray:
    scale = float(np.max(np.abs(reference))) or 1.0
    return np.abs(user - reference) > EXACT * scale


def characterise(tensor: str, user, reference, context: Context = Context()) -> Finding | None:
    """The first characterisation of ``user`` against ``reference`` that fits, or ``None``."""
    user = np.asarray(user, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if not (np.all(np.isfinite(user)) and np.all(np.isfinite(reference))):
        return None
    if user.shape != reference.shape:
        return _shape(tensor, user, reference)
    if user.ndim == 0 or user.size == 1:
        return None  # a scalar (the loss, the lr): a ratio of one number says nothing of its law
    if not _departs(user, reference).any():
        return None
    if np.all(user == 0):
        return Finding(tensor, "zeros", "0 on every element, where torch's is not", "a term missing: the "
                       "gradient never written, written into a copy, or a branch of the graph not followed",
                       "write (or +=) this gradient in the backward, on the array that is read")  # fmt: skip
    if user.ndim == 2 and user.shape[0] == user.shape[1] > 1 and _exact(user, reference.T):
        return Finding(
            tensor,
            "transpose",
            "torch's transposed (a square matrix)",
            "the product's operands in the wrong order or layout",
            "transpose it: dW = dout.T @ x for torch's (out, in)",
        )
    return (
        _derivative(tensor, user, reference, context)
        or _ratio(tensor, user, reference, context)
        or _boundary(tensor, user, reference, context)
    )


def findings(pairs: Sequence[tuple[str, object, object]], context: Context = Context()) -> list[Finding]:
    """A finding for every (tensor, user, reference) that has one, in the order given (nearest the loss first)."""
    found = []
    for tensor, user, reference in pairs:
        try:
            finding = characterise(tensor, user, reference, context)
        except (ValueError, TypeError):  # arrays that cannot be compared this way: nothing to say
            finding = None
        if finding is not None:
            found.append(finding)
    return found


Pairs = Sequence[tuple[str, object, object]]  # (tensor, the user's array, torch's)


def diagnose(pairs: Pairs, context: Context = Context(), lead: str = "") -> Diagnosis | None:
    """The findings of the failing tensors as a ``Diagnosis`` (the first one's, the others listed), or
    ``None`` when none fits. ``lead``: what is known already ("your backward differs in float64 too")."""
    return from_findings(findings(pairs, context), lead)


def from_findings(found: Sequence[Finding], lead: str = "") -> Diagnosis | None:
    """The first finding as a ``Diagnosis``, the others in its ``findings``; findings that say the same of
    several tensors (every gradient 32× torch's) are said once, naming the tensors."""
    if not found:
        return None
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for finding in found:
        groups.setdefault((finding.evidence, finding.cause, finding.fix), []).append(finding)
    lines = []
    for same in groups.values():
        others = f" (the same on {', '.join(f.tensor for f in same[1:])})" if len(same) > 1 else ""
        lines.append(replace(same[0], evidence=same[0].evidence + others))
    first = lines[0]
    text = f"{lead}: " if lead else ""
    return Diagnosis(
        f"measured:{first.kind}", f"{text}{first.tensor}: {first.evidence}: {first.cause}",
        fix=first.fix, replayed=False, findings=tuple(f.line() for f in lines[1:]),
    )  # fmt: skip


def measure(checks: Sequence, kept: Mapping, contexts: Mapping[int, Context] | None = None, lead: str = ""):
    """``diagnose`` on the failing ``checks`` (a report's) of the first failing step, in their order (nearest
    the loss first), from the arrays ``kept`` by ``compare.core.checks.Checks`` (``keep=``); ``contexts``:
    each step's ``Context``."""
    failing = [c for c in checks if not c.passed]
    if not failing:
        return None
    step = min(c.step for c in failing)
    keys = [(c.step, c.stage, c.tensor) for c in failing if c.step == step]
    pairs = [(key[2], *kept[key]) for key in keys if key in kept]
    return diagnose(pairs, (contexts or {}).get(step, Context()), lead)
