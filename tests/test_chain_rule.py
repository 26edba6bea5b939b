"""The chain-rule experiment follows the lecture notes: a 2-3-2 network with sigmoid at both layers and
the squared error, ∂E/∂w₃₂⁽²⁾ (output layer) and ∂E/∂w₂₃⁽¹⁾ (hidden layer, error from both outputs),
each term computed by hand, by the NumPy layers and by torch autograd, and all three agree.

Tolerances: the three ways compute the same float64 expressions in different orders (a sum of 2 or 3
products), so they agree to a few ulps; ``REL`` = 1e-12 leaves three orders of margin over the measured
4e-16 and is still far below any wrong formula (a missing out(1 − out) changes a term by a factor ≥ 4).
"""

import io
import math

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from compare.experiments import chain_rule
from compare.experiments.base import ParityError, Session
from conftest import invoke
from manual import layers

REL = 1e-12  # float64, different summation order: see the module docstring
LR = chain_rule.Params().lr


@pytest.fixture(scope="module")
def ways() -> dict[str, dict[str, float]]:
    return {
        "hand": chain_rule.by_hand(LR),
        "numpy": chain_rule.numpy_pass(LR)[0],
        "torch": chain_rule.torch_pass(LR)[0],
    }


@pytest.mark.parametrize("term", chain_rule.TERMS)
def test_hand_numpy_and_torch_agree_term_by_term(ways, term):
    hand = ways["hand"][term]
    assert ways["numpy"][term] == pytest.approx(hand, rel=REL)
    assert ways["torch"][term] == pytest.approx(hand, rel=REL)


@pytest.mark.parametrize("way", ["numpy", "torch"])
def test_the_output_weight_follows_the_notes_formula(ways, way):
    t = ways[way]
    t2 = chain_rule.T[0, 1]
    assert t["e2"] == pytest.approx(t["o2"] - t2, rel=REL)  # ∂E/∂o₂ of E = ½Σ(o − t)²
    assert t["s2"] == pytest.approx(t["o2"] * (1 - t["o2"]), rel=REL) and t["s2"] <= 0.25  # the delta term
    assert t["delta2"] == pytest.approx((t["o2"] - t2) * t["o2"] * (1 - t["o2"]), rel=REL)
    assert t["grad_w32_2"] == pytest.approx(t["delta2"] * t["h3"], rel=REL)
    assert t["new_w32_2"] == pytest.approx(0.65 - LR * t["grad_w32_2"], rel=REL)  # w₃₂⁽²⁾ starts at 0.65


@pytest.mark.parametrize("way", ["numpy", "torch"])
def test_the_hidden_weight_gets_its_error_from_both_outputs(ways, way):
    t = ways[way]
    assert t["back3"] == pytest.approx(t["delta1"] * t["w31_2"] + t["delta2"] * t["w32_2"], rel=REL)
    # both outputs contribute a share that is not negligible: dropping either changes the sum
    assert min(abs(t["delta1"] * t["w31_2"]), abs(t["delta2"] * t["w32_2"])) > 0.1 * abs(t["back3"])
    assert t["s3"] == pytest.approx(t["h3"] * (1 - t["h3"]), rel=REL) and t["s3"] <= 0.25
    assert t["delta3"] == pytest.approx(t["back3"] * t["s3"], rel=REL)
    assert t["grad_w23_1"] == pytest.approx(t["delta3"] * t["x2"], rel=REL)
    assert t["new_w23_1"] == pytest.approx(0.40 - LR * t["grad_w23_1"], rel=REL)  # w₂₃⁽¹⁾ starts at 0.40
    assert t["E_next"] < t["E"]  # one small step of gradient descent lowers the loss it descends


@pytest.mark.parametrize(
    ("name", "index", "term"), [(*chain_rule.W32_2, "grad_w32_2"), (*chain_rule.W23_1, "grad_w23_1")]
)
def test_the_derivation_matches_central_differences(ways, name, index, term):
    """A fourth way, independent of every chain rule: (E(w + h) − E(w − h)) / 2h. Its error is
    O(h²)·E''' ≈ 1e-12 plus rounding 1e-16/h ≈ 1e-11 at h = 1e-5, far below the gradients (≥ 1e-3)."""
    step = 1e-5

    def loss(shift: float) -> float:
        weights = {key: value.tolist() for key, value in chain_rule.WEIGHTS.items()}
        weights[name][index[0]][index[1]] += shift
        return chain_rule.hand_forward(weights)[2]

    numeric = (loss(step) - loss(-step)) / (2 * step)
    assert math.isclose(numeric, ways["hand"][term], rel_tol=1e-6)  # 1e-11 / 1e-3, with margin


def test_the_experiment_compares_every_value_and_reports_them():
    session = Session("chain-rule", None, io.StringIO(), tensorboard=False)
    outcome = chain_rule.EXPERIMENT.run(chain_rule.Params(), session)
    (entry,) = session.parity
    # every term against torch and against the hand values, every gradient and updated parameter (17 each)
    assert entry.measured == outcome.numbers["compared"] == 3 * len(chain_rule.TERMS) + 2 * 17
    assert entry.measured_worst <= REL
    assert outcome.numbers["grad_w32_2"] == pytest.approx(chain_rule.by_hand(LR)["grad_w32_2"], rel=0)


def test_a_delta_without_out_times_one_minus_out_is_caught(monkeypatch):
    monkeypatch.setattr(layers.Sigmoid, "backward", lambda self, dout: dout * self._out)
    session = Session("chain-rule", None, io.StringIO(), tensorboard=False)
    with pytest.raises(ParityError, match="sub-run step"):
        chain_rule.EXPERIMENT.run(chain_rule.Params(), session)


def test_the_output_shows_the_training_loop_in_the_notes_order(tmp_path, capsys):
    status, out, _ = invoke(["experiment", "chain-rule", "--logdir", str(tmp_path), "--no-tensorboard"], capsys)
    assert status == 0
    steps = ["1. initialise", "2. mini-batch", "3. backprop", "4. update", "5. repeat"]
    positions = [out.find(f"\n{step}") for step in steps]
    assert -1 not in positions and positions == sorted(positions), positions


def test_tensorboard_holds_each_term_for_both_sides_and_the_derivation(tmp_path):
    session = Session("chain-rule", tmp_path, io.StringIO(), tensorboard=True)
    outcome = chain_rule.EXPERIMENT.run(chain_rule.Params(), session)
    values = {}
    for side in ("manual", "torch"):
        events = EventAccumulator(str(tmp_path / "step" / side))
        events.Reload()
        values[side] = {tag: events.Scalars(tag)[0].value for tag in events.Tags()["scalars"]}
    assert set(values["manual"]) == {f"term/{key}" for key in chain_rule.TERMS} == set(values["torch"])
    for key in ("grad_w32_2", "grad_w23_1"):  # TensorBoard stores float32: agreement to its precision
        assert values["manual"][f"term/{key}"] == pytest.approx(outcome.numbers[key], rel=1e-6)
        assert values["torch"][f"term/{key}"] == pytest.approx(outcome.numbers[key], rel=1e-6)
    parity = EventAccumulator(str(tmp_path / "step" / "summary"))
    parity.Reload()
    assert parity.Tags()["tensors"]  # the derivation, as text
