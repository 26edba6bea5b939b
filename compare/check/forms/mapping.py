"""Which of the user's arrays is which of torch's parameters, without glue code.

Parameters match torch's by, in order:

1. an explicit ``mapping={torch_name: user_name}``; ``"W.T"`` says the user's ``W`` is the transpose of
   torch's tensor (a square matrix stored (in, out));
2. textbook names: ``W``/``w``/``weight``/``kernel`` for a ``weight``, ``b``/``bias`` for a ``bias``,
   ``gamma``/``beta`` (numpy-ml's ``scaler``/``intercept``) for a normalisation layer's; in a model,
   ``W1``, ``b1``, ``W2``, ... for the Linear layers in order and ``gamma1``, ``beta1``, ... for the
   normalisation layers in order;
3. order and shape: the only remaining user array of a compatible shape.

A weight matrix stored (in, out), as the textbooks write ``x @ W``, is transposed to torch's (out, in); a
bias stored as a row (1, n) or a column (n, 1) is torch's (n,) reshaped.
A convolution kernel stored channels last, (kh, kw, in, out) as numpy-ml and Keras keep it, is permuted to
torch's (out, in, kh, kw) the same way (``"W.T"`` in a mapping), and a bias (1, 1, 1, n) reshaped.
A square matrix cannot tell its layout by its shape: it needs ``layout="in_out"`` (``x @ W``) or
``layout="out_in"`` (``x @ W.T``), or a ``".T"`` mapping. Anything ambiguous is an error saying which
``mapping`` to pass, never a silent guess.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from compare.errors import InputError

WEIGHT_NAMES = ("W", "w", "weight", "kernel")
BIAS_NAMES = ("b", "bias")
NORM_WEIGHT_NAMES = ("gamma", "weight", "W", "scaler")  # scaler, intercept: numpy-ml's norm layers
NORM_BIAS_NAMES = ("beta", "bias", "b", "intercept")
BUFFER_NAMES = ("running_mean", "running_var", "num_batches_tracked")
LAYOUTS = ("in_out", "out_in")
CHANNELS_LAST = (3, 2, 0, 1)  # a kernel (kh, kw, in, out) into torch's (out, in, kh, kw)


@dataclass(frozen=True)
class Link:
    """The user's array ``user`` holds torch's tensor, transposed when ``transposed``."""

    user: str
    transposed: bool = False  # a matrix (in, out), or a kernel channels last (kh, kw, in, out)
    shape: tuple[int, ...] | None = None  # torch's shape, for a (1, n), (n, 1) or (1, 1, 1, n) bias reshaped to (n,)

    def to_torch(self, value: np.ndarray) -> np.ndarray:
        if self.transposed:
            value = np.transpose(value, CHANNELS_LAST) if np.ndim(value) == len(CHANNELS_LAST) else value.T
        if self.shape is not None and np.ndim(value) >= 2 and np.size(value) == int(np.prod(self.shape)):
            return np.reshape(value, self.shape)
        return value  # another shape: compared as it is, and found wrong

    def label(self) -> str:
        return f"{self.user}.T" if self.transposed else self.user


def _vector(torch_shape: tuple, shape: tuple) -> bool:
    """A row (1, n), a column (n, 1) or a (1, 1, 1, n) holding torch's vector (n,)."""
    if len(torch_shape) != 1 or len(shape) < 2 or int(np.prod(shape)) != torch_shape[0]:
        return False
    return sum(1 for size in shape if size != 1) <= 1


def _in_torch_order(shape: tuple, transposed: bool) -> tuple:
    """The shape of the user's array in torch's layout: a matrix reversed, a channels-last kernel permuted."""
    if not transposed:
        return tuple(shape)
    if len(shape) == len(CHANNELS_LAST):
        return tuple(shape[axis] for axis in CHANNELS_LAST)
    return tuple(shape[::-1])


def _link(user: str, transposed: bool, torch_shape: tuple, shape: tuple) -> Link:
    return Link(user, transposed, tuple(torch_shape) if _vector(tuple(torch_shape), tuple(shape)) else None)


def _orientation(torch_name: str, torch_shape: tuple, user_name: str, shape: tuple, layout: str | None) -> bool | None:
    """Whether the user's array is torch's transposed; ``None`` when the shapes cannot match."""
    if len(shape) == 2 and shape[0] == shape[1] and tuple(torch_shape) == shape:
        if layout is None:
            raise InputError(
                f"'{user_name}' {shape} is square, so its layout is not known from its shape: pass "
                f"layout='in_out' (you compute x @ {user_name}) or layout='out_in' (x @ {user_name}.T), "
                f"or mapping={{'{torch_name}': '{user_name}.T'}} for (in, out)"
            )
        return layout == "in_out"
    if len(shape) == len(CHANNELS_LAST) and tuple(shape) == tuple(torch_shape) == _in_torch_order(shape, True):
        if layout is None:
            raise InputError(
                f"'{user_name}' {shape} reads as torch's (out, in, kh, kw) and as channels last (kh, kw, in, out): "
                f"pass layout='in_out' (channels last) or layout='out_in' (torch's), "
                f"or mapping={{'{torch_name}': '{user_name}.T'}} for channels last"
            )
        return layout == "in_out"
    if tuple(shape) == tuple(torch_shape) or _vector(tuple(torch_shape), tuple(shape)):
        return False
    if len(shape) in (2, len(CHANNELS_LAST)) and _in_torch_order(shape, True) == tuple(torch_shape):
        return True
    return None


def _family(torch_shapes: Mapping[str, tuple]) -> dict[str, tuple[str, int]]:
    """Each torch module prefix → ("linear" | "norm", its 1-based rank in that family), for W1/gamma1 names."""
    families: dict[str, tuple[str, int]] = {}
    counts = {"linear": 0, "norm": 0}
    for name, shape in torch_shapes.items():
        prefix, _, key = name.rpartition(".")
        if key == "weight" and prefix not in families:
            kind = "linear" if len(shape) >= 2 else "norm"
            counts[kind] += 1
            families[prefix] = (kind, counts[kind])
    return families


def _textbook(torch_name: str, family: tuple[str, int] | None, numbered: bool) -> list[str]:
    key = torch_name.rpartition(".")[2]
    kind = family[0] if family else "linear"
    names = {
        ("linear", "weight"): WEIGHT_NAMES,
        ("linear", "bias"): BIAS_NAMES,
        ("norm", "weight"): NORM_WEIGHT_NAMES,
        ("norm", "bias"): NORM_BIAS_NAMES,
    }.get((kind, key), (key,))
    if family is None or not numbered:
        return [*names, torch_name]
    return [f"{name}{family[1]}" for name in names] + [torch_name]


def resolve(
    torch_shapes: Mapping[str, tuple],
    user: Mapping[str, np.ndarray],
    mapping: Mapping[str, str] | None = None,
    layout: str | None = None,
    numbered: bool = False,
) -> dict[str, Link]:
    """``{torch_name: Link}`` for every torch parameter; ``numbered``: textbook names carry the layer's
    rank (``W1``), as in a whole model. Raises ``InputError`` when a match is missing or ambiguous."""
    if layout is not None and layout not in LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    mapping = dict(mapping or {})
    unknown = [name for name in mapping if name not in torch_shapes]
    if unknown:
        raise InputError(f"mapping names {unknown}, which the torch module does not have: {list(torch_shapes)}")
    families = _family(torch_shapes)
    links: dict[str, Link] = {}
    for name, user_name in mapping.items():
        links[name] = _explicit(name, torch_shapes[name], user_name, user)
    for name, shape in torch_shapes.items():
        if name in links:
            continue
        for candidate in _textbook(name, families.get(name.rpartition(".")[0]), numbered):
            taken = {link.user for link in links.values()}
            if candidate in user and candidate not in taken:
                transposed = _orientation(name, shape, candidate, np.shape(user[candidate]), layout)
                if transposed is not None:
                    links[name] = _link(candidate, transposed, shape, np.shape(user[candidate]))
                    break
    _by_shape(torch_shapes, user, links, layout)
    return {name: links[name] for name in torch_shapes}


def _explicit(name: str, shape: tuple, user_name: str, user: Mapping[str, np.ndarray]) -> Link:
    base, transposed = (user_name[:-2], True) if user_name.endswith(".T") else (user_name, False)
    if base not in user:
        raise InputError(f"mapping['{name}'] = '{user_name}', but your code has no '{base}'; it has {list(user)}")
    have = np.shape(user[base])
    if _in_torch_order(have, transposed) == tuple(shape) or (not transposed and _vector(tuple(shape), have)):
        return _link(base, transposed, shape, have)
    hint = ""
    if len(have) == 2 and have[::-1] == tuple(shape):
        hint = f": it is (in, out), torch's transposed: pass mapping={{'{name}': '{base}.T'}}"
    elif transposed and have == tuple(shape):
        hint = f": it is torch's (out, in) already: pass mapping={{'{name}': '{base}'}}"
    raise InputError(f"mapping['{name}'] = '{user_name}': shape {have} does not match torch's {tuple(shape)}{hint}")


def _by_shape(
    torch_shapes: Mapping[str, tuple], user: Mapping[str, np.ndarray], links: dict[str, Link], layout: str | None
) -> None:
    """The remaining torch parameters, each to the only remaining user array of a compatible shape."""
    for name, shape in torch_shapes.items():
        if name in links:
            continue
        taken = {link.user for link in links.values()}
        fits = {}
        for user_name, value in user.items():
            if user_name not in taken:
                transposed = _orientation(name, shape, user_name, np.shape(value), layout)
                if transposed is not None:
                    fits[user_name] = transposed
        if len(fits) != 1:
            what = "no array" if not fits else f"{len(fits)} arrays ({', '.join(fits)})"
            raise InputError(
                f"torch's '{name}' {tuple(shape)}: {what} of your code match by name or shape; "
                f"pass mapping={{'{name}': '<your name>'}} (your arrays: {', '.join(user) or 'none'})"
            )
        user_name, transposed = next(iter(fits.items()))
        links[name] = _link(user_name, transposed, shape, np.shape(user[user_name]))
    extra = set(user) - {link.user for link in links.values()}
    if extra:
        raise InputError(
            f"your {sorted(extra)} match no torch parameter (torch has {list(torch_shapes)}): pass mapping"
        )


def grad_name(user_name: str) -> str:
    """The textbook attribute of a parameter's gradient: ``W`` → ``dW``, ``W1`` → ``dW1``."""
    return f"d{user_name}"
