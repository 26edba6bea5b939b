"""The verdict: the JSON report (a contract for scripts) and the text a person reads, which ends on the
one verdict line (its word decided by ``compare.core.verdict``)."""

import datetime as dt
import json
import math
import os
import tempfile
from pathlib import Path

from compare.core import gradcheck
from compare.core.coverage import Coverage
from compare.core.records import Check, Raised, RunResult
from compare.core.stages import STAGES
from compare.core.tolerances import tolerance
from compare.core.verdict import NOTHING, Verdict, Word, of_run
from manual.optim.variants import VARIANTS

MAX_DRIFT_STEPS = 1000  # the report lists at most this many drift steps (``resyncs`` counts them all)


def check_json(check: Check) -> dict:
    return {
        "step": check.step,
        "stage": check.stage,
        "tensor": check.tensor,
        "max_abs": check.diff.max_abs,
        "max_rel": check.diff.max_rel,
        "tolerance": check.max_rel,
        "worst_index": list(check.diff.worst_index),
        "problem": check.diff.problem,
    }


def build(
    result: RunResult, config: dict, run_dir: Path | None, started_at: str | None = None, look_at: str | None = None
) -> dict:
    """The ``--json`` report; every field is listed in the README (``write_json`` nulls NaN and inf)."""
    failure = result.first_failure
    limits = {stage: tolerance(config["dtype"], stage, config.get("device", "cpu")) for stage in STAGES}
    decided = of_run(result, config.get("variant") is not None)
    return {
        "verdict": str(decided.word),
        "verdict_detail": decided.to_json(),
        "started_at": started_at,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "passed": result.passed,
        "complete": result.complete,
        "steps": result.steps,
        "coverage": coverage(result).to_json(),
        "first_failure": None if failure is None else {**check_json(failure), "worst_elements": list(failure.worst)},
        "diagnosis": result.diagnosis,
        "failed_steps": result.failed_steps,
        "drift": drift_json(result),
        "followed_decisions": {"count": result.followed, "steps": result.followed_steps[:MAX_DRIFT_STEPS]},
        "measured_spread": sorted(set(result.measured_spread)),
        "raised": None if result.raised is None else raised_json(result.raised),
        "diverged": diverged_json(result, look_at),
        "warnings": dict(result.warnings),
        "worst": {stage: check_json(check) for stage, check in result.worst_by_stage().items()},
        "tolerances": {stage: {"max_rel": limit.max_rel, "reason": limit.reason} for stage, limit in limits.items()},
        "losses": {
            "manual": list(result.losses_manual),
            "torch": list(result.losses_torch),
        },
        "lr": list(result.lrs),
        "lr_manual": list(result.lrs_manual),
        "validation": [
            {
                "step": v["step"],
                **{side: dict(v[side]) for side in ("manual", "torch")},
            }
            for v in result.validation
        ],
        "variant": variant_json(result, config.get("variant")),
        "gradcheck": [w.to_json() for w in result.witnesses] if config.get("gradcheck") else None,
        "config": config,
        "run_dir": None if run_dir is None else str(run_dir),
    }


# why a stage a run did not compare has nothing: the stages each run has, but eval (``compare.core.stages``)
ABSENT = {"eval": "the model's output does not depend on the mode: no Dropout or BatchNorm"}


def coverage(result: RunResult) -> Coverage:
    """What the run compared (counted as it went: ``RunResult.compared``), and each stage it did not, and why."""
    missing = [stage for stage in STAGES if stage not in result.compared]
    notes = [f"stage {stage} not compared: {ABSENT.get(stage, 'no tensor of this run')}" for stage in missing]
    return Coverage.counted(result.compared_steps, result.comparisons, result.compared, notes)


def drift_json(result: RunResult) -> dict | None:
    """Null, or the first departure judged drift: its step, each departed tensor's size and growth (its
    free-running max_rel over its max_rel in one step from identical values), and every drift step."""
    drift = result.drift
    if drift is None:
        return None
    tensors = [
        {
            **check_json(check),
            "one_step_max_rel": drift.one_step.get(f"{check.stage} {check.tensor}"),
            "growth": drift.growth(check),
        }
        for check in drift.departures
    ]
    return {
        "first_step": drift.step,
        "tensors": tensors,
        "resyncs": len(result.drift_steps),
        "steps": result.drift_steps[:MAX_DRIFT_STEPS],
    }


def raised_json(raised: Raised) -> dict:
    return {
        "side": raised.side,
        "step": raised.step,
        "stage": raised.stage,
        "layer": raised.layer,
        "type": raised.type,
        "message": raised.message,
        "traceback": raised.traceback,
    }


def drift_line(result: RunResult) -> str:
    drift = result.drift
    worst = max(drift.departures, key=lambda check: check.diff.max_rel)
    more = f" ({len(result.drift_steps)} drift steps, each resynced)" if len(result.drift_steps) > 1 else ""
    return (
        f"  drift: from step {drift.step}, {worst.stage} {worst.tensor} max_rel {fmt(worst.diff.max_rel)} "
        f"> {worst.max_rel:.1e} free-running, {fmt(drift.one_step.get(f'{worst.stage} {worst.tensor}'))} in one "
        f"step from identical values (growth {fmt(drift.growth(worst))}): rounding amplified by training, "
        f"resynced{more}"
    )


def followed_line(result: RunResult) -> list[str]:
    """The sign decisions taken on rounding noise (``compare.core.decisions``), when there were any."""
    if not result.followed:
        return []
    steps = ", ".join(str(step) for step in result.followed_steps[:5])
    more = ", ..." if len(result.followed_steps) > 5 else ""
    plural = "s" if result.followed != 1 else ""
    return [
        f"  {result.followed} sign decision{plural} on rounding noise followed torch's (at steps {steps}{more}): "
        "both sides' inputs equal up to rounding, each side's own rule everywhere else"
    ]


def variant_json(result: RunResult, name: str | None) -> dict | None:
    """For a textbook variant: where it departs from torch's rule, by how much, and why."""
    if name is None:
        return None
    variant = VARIANTS[name]
    per_step = result.step_worst
    failure = result.first_failure
    return {
        "name": name,
        "compared_with": variant.torch_name,
        "cause": variant.cause,
        "departs": failure is not None,
        "first_departure": None if failure is None else check_json(failure),
        "max_rel_last_step": per_step[-1] if per_step else None,
        "max_rel_worst": max(per_step) if per_step else None,
    }


def finite(value):
    """The report with every NaN and infinity replaced by null, recursively (JSON has neither)."""
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, report: dict) -> None:
    """Write atomically, so a reader never sees half a report."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".json.tmp")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(finite(report), file, indent=2, allow_nan=False)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (and a newline) atomically."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def variant_lines(result: RunResult, name: str) -> list[str]:
    info = variant_json(result, name)
    head = f"variant {name} (manual) vs torch's {info['compared_with']}: "
    if not info["departs"]:
        head += f"agrees within tolerance at every one of the {result.steps} steps"
    else:
        first = info["first_departure"]
        head += (
            f"departs at step {first['step']} ({first['stage']} {first['tensor']}, max_rel {fmt(first['max_rel'])}); "
            f"worst max_rel {fmt(info['max_rel_worst'])}, at the last step {fmt(info['max_rel_last_step'])}"
        )
    return [head, f"  why: {info['cause']}"]


def fmt(value: float | None) -> str:
    """A max_rel as every verdict shows it: three significant digits; a missing one (null in JSON) as inf."""
    if value is None:
        return "inf"
    return f"{value:.3e}" if math.isfinite(value) else str(value)


def diverged_json(result: RunResult, look_at: str | None) -> dict | None:
    """Null, or for a run that diverged: ``{step, undecidable, look_at}`` (``undecidable``: no step could
    judge the departure; false when both sides overflowed alike)."""
    if diverged_line(result, look_at) is None:
        return None
    step = result.first_failure.step
    return {"step": step, "undecidable": result.undecidable_from == step, "look_at": look_at}


def diverged_line(result: RunResult, look_at: str | None) -> str | None:
    """The verdict line of a run that diverged (both sides alike, or undecidably), else ``None``."""
    failure, hint = result.first_failure, f"; look at {look_at}" if look_at else ""
    if failure is None or result.raised is not None:
        return None
    where = f"{failure.stage} {failure.tensor}"
    if result.undecidable_from is not None and failure.step == result.undecidable_from:
        return (
            f"DIVERGED: undecidable from step {failure.step} ({where} departed, max_rel {fmt(failure.diff.max_rel)}); "
            f"the run diverged (loss {fmt(result.losses_torch[failure.step - 1])}), and one step from torch's own "
            f"values cannot tell rounding from a wrong rule there{hint}"
        )
    if failure.diff.problem == "nonfinite:both":
        return (
            f"DIVERGED: both sides alike left the finite numbers at step {failure.step} ({where}): the run "
            f"diverged, which says nothing about the rules{hint}"
        )
    return None


def warnings_line(counts: dict[str, int]) -> str:
    """Every run-time warning of the run (NumPy's overflow, say) in one line, most frequent first."""
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    shown = "; ".join(f"{message} ({count}x)" for message, count in ranked[:3])
    more = f"; {len(ranked) - 3} more kinds" if len(ranked) > 3 else ""
    return f"{sum(counts.values())} run-time warnings: {shown}{more} (the report's first_failure says where)"


def stage_table(result: RunResult, decided: Verdict) -> list[str]:
    """The worst difference per stage, each marked: ok, drf (judged drift), dep (a variant's departure),
    div (where the run diverged) or BAD."""
    drifted = set(result.drift_steps)
    other = {Word.DEPARTS: "dep", Word.DIVERGED: "div"}.get(decided.word, "BAD")
    lines = ["stage     worst max_rel  tolerance  at (step, tensor)"]
    for stage, check in result.worst_by_stage().items():
        mark = "ok " if check.passed else "drf" if check.step in drifted else other
        lines.append(
            f"{stage:<9} {fmt(check.diff.max_rel):>13}  {check.max_rel:9.1e}  {mark} step {check.step}, {check.tensor}"
        )
    return lines


def failure_lines(result: RunResult) -> list[str]:
    """The first failure's worst elements side by side, and how many steps failed."""
    failure, lines = result.first_failure, []
    if failure.worst:
        lines.append(f"  {'index':<12} {'manual':>24} {'torch':>24} {'|diff|':>11}")
        for row in failure.worst:
            delta = abs(row["manual"] - row["torch"])
            index = ",".join(str(i) for i in row["index"]) or "-"
            lines.append(f"  {index:<12} {row['manual']:>24.17g} {row['torch']:>24.17g} {fmt(delta):>11}")
    if result.failed_steps > 1:
        lines.append(f"  {result.failed_steps} of {result.steps} steps had a tensor outside tolerance")
    return lines


def diagnosis_lines(result: RunResult) -> list[str]:
    """What measuring the first failure found (``RunResult.diagnosis``): each finding, then the fix."""
    if result.diagnosis is None:
        return []
    return [*(f"measured: {line}" for line in result.diagnosis["findings"]), f"  fix: {result.diagnosis['fix']}"]


def decision_line(
    result: RunResult, decided: Verdict, steps_requested: int, variant: str | None, look_at: str | None
) -> str:
    """The one verdict line, which ends the verdict: its word first (``compare.core.verdict``)."""
    failure, steps = result.first_failure, result.steps
    if decided.word is Word.INCOMPLETE:
        found = f"; a first difference at step {failure.step} ({decided_where(failure)})" if failure else ""
        return f"INCOMPLETE: stopped after {steps} of {steps_requested} steps{found}"
    if decided.word is Word.PASS:
        return f"PASS: parity holds at every stage of all {steps} steps"
    if decided.word is Word.PASS_DRIFT:
        return (
            f"PASS (drift adjudicated): parity holds at all {steps} steps once the drift from step {decided.step} "
            f"is set apart (worst max_rel/tolerance {decided.drift_ratio:.3g}, {decided.where}: rounding amplified "
            f"by training, {len(result.drift_steps)} step(s) resynced)"
        )
    if decided.word is Word.DIVERGED:
        return diverged_line(result, look_at)
    if result.raised is not None:
        return f"FAIL: {result.raised.line()} (raised:{result.raised.type}); the traceback is in the report"
    if failure is None and decided.where == NOTHING:
        return f"FAIL: nothing was compared in {steps} step(s): a run that compares nothing is never a pass"
    problem = f" ({failure.diff.problem})" if failure.diff.problem else ""
    at = f"at step {failure.step}, stage {failure.stage}, tensor {failure.tensor}{problem}"
    sizes = f"max_abs {fmt(failure.diff.max_abs)}, max_rel {fmt(failure.diff.max_rel)}"
    sizes += f" > tolerance {failure.max_rel:.1e}"
    if decided.word is Word.DEPARTS:
        torch_name = VARIANTS[variant].torch_name
        return f"DEPARTS: the textbook {variant} departs from torch's {torch_name} {at}: {sizes} (expected)"
    return f"FAIL: first difference {at}: {sizes}"


def decided_where(check: Check) -> str:
    return f"{check.stage} {check.tensor}"


def verdict(result: RunResult, steps_requested: int, variant: str | None = None, look_at: str | None = None) -> str:
    """The verdict as a person reads it: a textbook variant's departure, the worst difference per stage and
    the coverage line (``compare.core.coverage``), the diagnosis (the first failure's worst elements, the
    drift), the run-time warnings, and last, one line that starts with the verdict's word
    (``compare.core.verdict``)."""
    decided = of_run(result, variant is not None)
    lines = [*(variant_lines(result, variant) if variant is not None else []), *stage_table(result, decided)]
    lines.append(coverage(result).line())
    if result.witnesses:
        lines.append(gradcheck.summary(result.witnesses))
    if result.first_failure is not None and result.raised is None:
        lines += failure_lines(result) + diagnosis_lines(result)
    if result.drift is not None:
        lines.append(drift_line(result))
    lines += followed_line(result)
    if result.measured_spread:
        names = sorted(set(result.measured_spread))
        lines.append(
            f"  {len(result.measured_spread)} comparison(s) passed at torch's measured rounding spread "
            f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}): compare.core.spread"
        )
    if result.warnings:
        lines.append(warnings_line(result.warnings))
    lines.append(decision_line(result, decided, steps_requested, variant, look_at))
    return "\n".join(lines)
