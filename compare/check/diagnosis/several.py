"""Several mistakes at once, each named: when no single known mistake reproduces a piece of the user's code,
each of its tensors is explained on its own, or two mistakes are replayed together.

* a layer: each catalog mistake of the layer's kind is replayed on what the user's layer received; one that
  reproduces the user's value of a tensor torch's layer gets wrong *explains* that tensor; when the departing
  tensors are all explained (a transposed dW beside an averaged db), every mistake needed is named;
* an optimizer: the catalog's mistakes of its rule are combined two at a time (a rule whose methods each
  override a different piece: β on the new gradient and no bias correction) and replayed on the user's
  gradients (``compare.check.diagnosis.optimizer_mistakes``' replay);
* beside a layer mistake in ``check_model``, the optimizer is replayed on the user's own gradients: when
  torch's rule does not reproduce the user's parameters from them, the optimizer departs too, and is named
  on its own (``optimizer_departs``).
"""

import itertools
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from torch import nn

from compare.check.diagnosis.known_mistakes import _replay_layer, closest, manual_layer
from compare.check.diagnosis.optimizer_mistakes import built, first_match, registered, replay_optimizer
from compare.check.report import Diagnosis
from compare.faults.catalog import CATALOG_LIST


def _agrees(mine: Any, theirs: Any, dtype: str) -> bool:
    return mine is None or (theirs is not None and closest([(mine, theirs)], dtype) is not None)


def _tensors(candidate, runs: Sequence) -> list[dict[str, tuple[Any, Any]]]:
    """Per run, {tensor: (the user's value, the candidate's)}."""
    pairs, per_run = _replay_layer(candidate, runs), []
    for run in runs:
        count = len(run.tensors)
        per_run.append(dict(zip(run.tensors, pairs[:count], strict=True)))
        pairs = pairs[count:]
    return per_run


def layer_mistakes(start: nn.Module, runs: Sequence, dtype: str) -> Diagnosis | None:
    """Every catalog mistake needed to explain the user's layer, tensor by tensor, when one is not enough."""
    if manual_layer(start) is None:
        return None
    reference = _tensors(manual_layer(start), runs)
    departing = {(i, key) for i, run in enumerate(reference) for key, (mine, theirs) in run.items()
                 if not _agrees(mine, theirs, dtype)}  # fmt: skip
    explained: dict[str, set] = {}
    for fault in CATALOG_LIST:
        if fault.override.layer_base is not type(manual_layer(start)):
            continue
        try:
            with np.errstate(all="ignore"):
                replayed = _tensors(fault.override.make_layer(manual_layer(start)), runs)
        except Exception:  # a candidate that cannot run on these inputs explains nothing
            continue
        found = {(i, key) for i, key in departing if _agrees(*replayed[i][key], dtype)}
        if found:
            explained[fault.name] = found
    chosen, left = {}, set(departing)
    while left:
        name = max(explained, key=lambda n: len(explained[n] & left), default=None)
        if name is None or not explained[name] & left:
            return None  # a departing tensor no known mistake explains
        chosen[name] = sorted({key for _, key in explained[name] & left})
        left -= explained.pop(name)
    if len(chosen) < 2:
        return None
    faults = {fault.name: fault for fault in CATALOG_LIST}
    where = "; ".join(f"{name} makes {', '.join(keys)}" for name, keys in chosen.items())
    text = "; ".join(faults[name].description for name in chosen)
    fix = "; ".join(faults[name].fix for name in chosen if faults[name].fix)
    return Diagnosis(" and ".join(chosen), f"{text} ({where})", fix=fix)


def _rules(torch_class: type) -> list:
    entries = registered(torch_class)
    rules = [entry.rule for entry in entries]
    return [f for f in CATALOG_LIST if f.override.optimizer and any(issubclass(f.override.optimizer, r) for r in rules)]


def optimizer_pairs(torch_class: type, hyperparameters: Mapping[str, Any], run, dtype: str) -> Diagnosis | None:
    """Two of the catalog's mistakes of the rule at once, replayed on the user's gradients."""
    candidates = []
    for a, b in itertools.combinations(_rules(torch_class), 2):
        try:
            rule = type(f"{a.override.optimizer.__name__}And{b.override.optimizer.__name__}",
                        (a.override.optimizer, b.override.optimizer), {})  # fmt: skip
        except TypeError:  # the two cannot combine
            continue
        # the methods each overrides (dunders aside: copying an instance adds __slotnames__ to its class)
        overridden = [{k for k in vars(f.override.optimizer) if not k.startswith("__")} for f in (a, b)]
        if overridden[0] & overridden[1]:
            continue  # both replace the same piece: one of them is lost in the combination
        why = f"your {torch_class.__name__} is torch's written with two mistakes: {a.description}; {b.description}"
        make = partial(built, rule, dict(hyperparameters))
        fix = f"{a.fix}; {b.fix}"
        candidates.append((f"{a.name} and {b.name}", why, fix, partial(replay_optimizer, make, False, run, dtype)))
    return first_match(candidates)


def optimizer_departs(torch_class: type, hyperparameters: Mapping[str, Any], run, dtype: str) -> bool:
    """Whether torch's rule, replayed on the user's own gradients, fails to reproduce the user's parameters."""
    entries = registered(torch_class)
    if not entries:
        return False
    try:
        with np.errstate(all="ignore"):
            make = partial(built, entries[0].rule, dict(hyperparameters))
            return replay_optimizer(make, False, run, dtype) is None
    except Exception:  # torch's rule cannot be replayed here: nothing to say
        return False
