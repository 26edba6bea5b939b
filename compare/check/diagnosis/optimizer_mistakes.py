"""Name an optimizer's departure: replay the user's gradients through each known mistake of torch's rule,
each textbook variant and each convention, from the same starting values and hyperparameters, and report
the one that reproduces the user's parameters step by step within the check's tolerance.

The candidates, in the order they are tried (the first that matches is named, the later ones that match too
are listed beside it):

* torch's rule with the user's own settings where they differ from torch's (a convention);
* the textbook variants of ``manual.optim.variants`` (a textbook form is the likelier origin of the same
  numbers), then the catalog's optimizer mistakes (``compare.faults.optimizers``, or the scheduler stepped
  first);
* torch's rule with a value the user's code may hard-code (an ε of 1e-7) or the initial value another library
  gives its lazily created state (``compare.check.diagnosis.conventions``);
* a textbook variant with such a value of the user's: two departures at once, both named with a fix each
  ("Deep Learning from Scratch"'s Adam is the paper's ε-hat form with ε = 1e-7 written into its code).
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, replace
from functools import partial
from typing import Any

import numpy as np

import compare.check.diagnosis.conventions as conventions
from compare.check.diagnosis.known_mistakes import closest
from compare.check.report import Diagnosis
from compare.faults.catalog import CATALOG_LIST
from manual import schedules as manual_schedules
from manual.optim import REGISTRY, VARIANTS


def first_match(candidates: Iterable[tuple[str, str, str, Callable[[], float | None]]]) -> Diagnosis | None:
    """The first candidate (name, explanation, fix, replay) whose replay (a function returning its worst
    ``max_rel``, or ``None``) matches, with the names of the later ones that match too."""
    matches = []
    for name, explanation, fix, replay in candidates:
        try:
            worst = replay()
        except Exception:  # a candidate that cannot run with these settings does not match
            continue
        if worst is not None:
            matches.append(Diagnosis(name, explanation, worst, fix=fix))
    if not matches:
        return None
    first = matches[0]
    return replace(first, also=tuple(m.name for m in matches[1:]))


def registered(torch_class: type) -> list:
    """The registry's entries (``manual.optim.REGISTRY``) whose torch optimizer is ``torch_class``."""
    return [entry for entry in REGISTRY.values() if entry.torch_class == torch_class.__name__]


def built(rule: type, hyperparameters: Mapping[str, Any]) -> Any:
    """``rule`` from the hyperparameters it takes (torch's resolved defaults hold more: foreach, fused, ...)."""
    accepted = {f.name for f in fields(rule)}
    return rule(**{key: value for key, value in hyperparameters.items() if key in accepted})


def _variants(torch_class: type) -> list[tuple[str, Any]]:
    """(name, ``manual.optim.variants.Variant``) for each textbook variant compared against ``torch_class``."""
    return [
        (name, variant)
        for name, variant in VARIANTS.items()
        if REGISTRY[variant.torch_name].torch_class == torch_class.__name__
    ]


def _optimizer_candidates(torch_class: type, hyperparameters: Mapping[str, Any], scheduled: bool) -> list:
    """(name, explanation, fix, factory, schedule_first) for every textbook variant and known mistake of
    ``torch_class``, the variants first (a textbook form is the likelier origin of the same numbers)."""
    hp = dict(hyperparameters)
    entries = registered(torch_class)
    candidates = []
    for name, variant in _variants(torch_class):
        candidates.append((name, variant.cause, variant.fix, partial(built, variant.optimizer, hp), False))
    for fault in CATALOG_LIST:
        rule = fault.override.optimizer
        if rule is not None and any(issubclass(rule, entry.rule) for entry in entries):
            candidates.append((fault.name, fault.description, fault.fix, lambda rule=rule: built(rule, hp), False))
        if fault.override.schedule_first and scheduled and entries:
            candidates.append((fault.name, fault.description, fault.fix, lambda: built(entries[0].rule, hp), True))
    return candidates


def replay_optimizer(make: Callable, schedule_first: bool, run, dtype: str) -> float | None:
    rule = make()
    params = {name: value.copy() for name, value in run.start.items()}
    state = rule.init(params)
    schedule = manual_schedules.build(run.parsed, rule) if run.parsed else None
    if schedule_first and schedule is not None:
        schedule.step()
    pairs: list[tuple[Any, Any]] = []
    for grads, mine, lr in zip(run.grads, run.params, run.lrs, strict=True):
        pairs.append((None if lr is None else np.float64(lr), np.float64(rule.lr)))
        rule.step(params, {name: g.copy() for name, g in grads.items()}, state)
        pairs.extend((mine.get(name), value.copy()) for name, value in params.items())
        if schedule is not None:
            schedule.step()
    return closest(pairs, dtype, "param")


def _differing(settings: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The user's settings (under torch's names) whose values are not torch's, the lr aside (compared itself)."""
    return {
        key: value for key, value in settings.items()
        if key in defaults and key != "lr" and not np.allclose(np.asarray(value, float), np.asarray(defaults[key]))
    }  # fmt: skip


def _settings_candidate(torch_class: type, settings: Mapping[str, Any], defaults: Mapping[str, Any]) -> list:
    """torch's rule with the user's settings where they differ from torch's (a convention, named first)."""
    entries, differing = registered(torch_class), _differing(settings, defaults)
    if not entries or not differing:
        return []
    rule, hp = entries[0].rule, {**defaults, **differing}
    diagnosis = conventions.setting_diagnosis("optimizer", torch_class.__name__, differing, defaults, 0.0)
    return [(diagnosis.name, diagnosis.explanation, diagnosis.fix, lambda: built(rule, hp), False)]


def _hard_coded_candidates(torch_class: type, settings: Mapping[str, Any], defaults: Mapping[str, Any]) -> list:
    """torch's rule with a value the user's code may hard-code where torch has a setting (an ε of 1e-7, the
    initial value of lazily created state)."""
    entries = registered(torch_class)
    if not entries:
        return []
    rule, found, name = entries[0].rule, [], torch_class.__name__
    tried = conventions.hard_coded("optimizer", name, defaults, settings)
    for diagnosis, values in tried + conventions.initial_state(name, defaults, settings):
        hp = {**defaults, **values}
        found.append((diagnosis.name, diagnosis.explanation, diagnosis.fix, lambda hp=hp: built(rule, hp), False))
    return found


def _variant_value_candidates(
    torch_class: type, hyperparameters: Mapping[str, Any], settings: Mapping[str, Any], defaults: Mapping[str, Any]
) -> list:
    """Each textbook variant of ``torch_class`` run with a value of the user's where torch has a setting: the
    user's settings that differ from torch's (stated), or a value of ``conventions.HARD_CODED`` (not stated).
    Two departures at once, each named with its own fix: "Deep Learning from Scratch"'s Adam is the ε-hat
    form (``adam_eps_hat``) with ε = 1e-7 written into its code (``convention:hard-coded-eps``)."""
    name, differing = torch_class.__name__, _differing(settings, defaults)
    values = conventions.hard_coded("optimizer", name, defaults, settings)
    if differing:
        values.insert(0, (conventions.setting_diagnosis("optimizer", name, differing, defaults, 0.0), differing))
    found = []
    for variant_name, variant in _variants(torch_class):
        for diagnosis, changed in values:
            make = partial(built, variant.optimizer, {**hyperparameters, **changed})
            why = f"{variant.cause}; and {diagnosis.explanation}"
            found.append((f"{variant_name} and {diagnosis.name}", why, f"{variant.fix}; {diagnosis.fix}", make, False))
    return found


def diagnose_optimizer(
    torch_class: type,
    hyperparameters: Mapping[str, Any],
    run,
    dtype: str,
    settings: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Diagnosis | None:
    """A convention of the user's settings (``settings`` under torch's names, against torch's resolved
    ``defaults``), the catalog's optimizer mistake (``compare.faults.optimizers``, or the scheduler stepped
    first), textbook variant (``manual.optim.variants``), or a variant with a value of the user's, that
    reproduces the user's parameters step by step."""
    candidates = _settings_candidate(torch_class, settings or {}, defaults or {})
    candidates += _optimizer_candidates(torch_class, hyperparameters, run.parsed is not None)
    candidates += _hard_coded_candidates(torch_class, settings or {}, defaults or {})
    candidates += _variant_value_candidates(torch_class, hyperparameters, settings or {}, defaults or {})
    return first_match(
        (
            name,
            why if name.startswith("convention:") else f"your {torch_class.__name__} is torch's written as: {why}",
            fix,
            partial(replay_optimizer, make, first, run, dtype),
        )
        for name, why, fix, make, first in candidates
    )
