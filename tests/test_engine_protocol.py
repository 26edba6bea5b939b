"""The engine checks a manual side that is not the package's MLP: a textbook two-layer network written
here in another style (its own parameter names W1, b1, W2, b2, weights stored (in, out), plain SGD),
exposing only the loss, the parameter gradients and the parameters. It passes against its torch twin,
and a mistake put into it is caught at the step, stage and tensor where it acts; the same holds when the
torch side runs data-parallel (two real processes)."""

import numpy as np
import pytest
import torch

from compare.core import distributed, engine
from compare.core.side import Pass
from compare.core.torch_side import TorchSide
from compare.inputs import world
from compare.inputs.config import RunConfig
from compare.inputs.prepare import Prepared, batch_stream, prepare
from torch_ref import TorchTwin, build_twin

STEPS = 5
# torch name → (the textbook name, whether the textbook stores it transposed: (in, out) against (out, in))
NAMES = {"0.weight": ("W1", True), "0.bias": ("b1", False), "2.weight": ("W2", True), "2.bias": ("b2", False)}


class TwoLayerNet:
    """x → sigmoid(x·W1 + b1) → ·W2 + b2 → softmax cross-entropy, the way textbooks write it."""

    def __init__(self, torch_weights: dict[str, np.ndarray], lr: float, mistake: str | None = None) -> None:
        self.params = {
            mine: (torch_weights[name].T if t else torch_weights[name]).copy() for name, (mine, t) in NAMES.items()
        }
        self.lr = lr
        self.mistake = mistake
        self.steps = 0

    def gradient(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        p = self.params
        h = 1.0 / (1.0 + np.exp(-(x @ p["W1"] + p["b1"])))  # (N, H)
        scores = h @ p["W2"] + p["b2"]  # (N, C)
        shifted = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        n = len(x)
        loss = float(-np.log(probs[np.arange(n), labels]).mean())
        dscores = probs.copy()
        dscores[np.arange(n), labels] -= 1.0
        dscores /= n
        db2 = dscores.mean(axis=0) if self.mistake == "db2 averaged again" else dscores.sum(axis=0)
        dh = dscores @ p["W2"].T
        da = dh * h * (1.0 - h)  # the delta term out(1 − out)
        grads = {"W1": x.T @ da, "b1": da.sum(axis=0), "W2": h.T @ dscores, "b2": db2}
        return loss, grads

    def update(self, grads: dict[str, np.ndarray]) -> None:
        self.steps += 1
        for key in self.params:
            if self.mistake == "b1 frozen from step 3" and key == "b1" and self.steps >= 3:
                continue
            self.params[key] -= self.lr * grads[key]


class TextbookSide:
    """The adapter the engine sees: torch's names and layout in, the network's own out."""

    def __init__(self, net: TwoLayerNet) -> None:
        self.net = net
        self._grads: dict[str, np.ndarray] = {}

    def _torch_named(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: (arrays[mine].T if t else arrays[mine]) for name, (mine, t) in NAMES.items()}

    def train_pass(self, x, y, masks) -> Pass:
        loss, self._grads = self.net.gradient(x, y)
        return Pass(loss=loss, grads=self.grads())

    def clip(self, max_norm: float) -> float:
        raise NotImplementedError("not asked for in these runs")

    def lr(self) -> float:
        return self.net.lr

    def update(self) -> None:
        self.net.update(self._grads)

    def end_step(self) -> None:
        pass

    def state(self) -> None:
        return None  # plain SGD keeps none; torch's SGD (momentum 0) keeps only an empty buffer slot

    def buffers(self) -> dict:
        return {}

    def parameters(self) -> dict[str, np.ndarray]:
        return self._torch_named(self.net.params)

    def grads(self) -> dict[str, np.ndarray]:
        return self._torch_named(self._grads)

    def eval_outputs(self, x):
        return None

    def predict(self, X):
        raise NotImplementedError

    def loss_value(self, prediction, y):
        raise NotImplementedError


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    return prepare(RunConfig(layers=(2, 8, 3), activation="sigmoid", optimizer="sgd", hyperparameters={"lr": 0.5}))


def check_run(prepared: Prepared, mistake: str | None, reference: TorchSide) -> engine.RunResult:
    net = TwoLayerNet(prepared.weights, prepared.config.hyperparameters["lr"], mistake)
    lockstep = engine.Lockstep(TextbookSide(net), reference, engine.Options(dtype="float64"))
    return engine.run(lockstep, batch_stream(prepared), STEPS, True, lambda record: None)


def local_reference(prepared: Prepared) -> TorchSide:
    c = prepared.config
    return TorchSide(build_twin(c.spec, prepared.weights, c.optimizer, c.hyperparameters, c.dtype))


CASES = [  # (mistake, where it must be caught: (step, stage, tensor), or None for a clean pass)
    (None, None),
    ("db2 averaged again", (1, "grad", "2.bias")),
    ("b1 frozen from step 3", (3, "param", "0.bias")),
]


@pytest.mark.parametrize(("mistake", "expected"), CASES, ids=[str(case[0]) for case in CASES])
def test_a_network_in_another_style_is_checked_through_the_protocol(prepared, mistake, expected):
    result = check_run(prepared, mistake, local_reference(prepared))
    failure = result.first_failure
    assert (failure and (failure.step, failure.stage, failure.tensor)) == expected
    stages = {check.stage for record in result.records for check in record.checks}
    assert stages == ({"loss", "grad", "state", "param"} if expected is None else stages)  # no forward: not exposed


@pytest.mark.distributed
@pytest.mark.parametrize(("mistake", "expected"), CASES, ids=[str(case[0]) for case in CASES])
def test_the_data_parallel_reference_gives_the_same_verdicts(prepared, mistake, expected):
    """The same network against the torch twin under DDP, two real processes: the same first failure,
    and on a clean run the same losses as against the local twin (the mean of equal shards' gradients
    is the full batch's, up to the order of summation)."""
    config = RunConfig(
        layers=(2, 8, 3), activation="sigmoid", optimizer="sgd", hyperparameters={"lr": 0.5}, world_size=2
    )
    ddp_prepared = prepare(config)
    c = ddp_prepared.config
    group = distributed.Group(world.membership(2), torch.device("cpu"), 60.0, ddp_prepared)
    try:
        twin = build_twin(c.spec, ddp_prepared.weights, c.optimizer, c.hyperparameters, c.dtype)
        result = check_run(ddp_prepared, mistake, group.side(twin, c.spec, None))
        group.close()
    finally:
        if not group.closed:
            group.abort()
    failure = result.first_failure
    assert (failure and (failure.step, failure.stage, failure.tensor)) == expected
    if expected is None:
        local = check_run(prepared, None, local_reference(prepared))
        # summation order differs between one batch and two all-reduced shards: float64 rounding only
        np.testing.assert_allclose(result.losses_torch, local.losses_torch, rtol=1e-13)


def test_the_reference_compares_every_parameter_of_any_module_in_chain_order():
    """Modules the scale floors do not know (LayerNorm) and parameters held by nested blocks are in the
    grad stage too, each at its module's place from the loss down, with its real gradient."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 4), torch.nn.LayerNorm(4), torch.nn.Sequential(torch.nn.Tanh(), torch.nn.Linear(4, 3))
    ).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    side = TorchSide(TorchTwin(model, torch.nn.CrossEntropyLoss(), optimizer, None))
    x, y = np.random.default_rng(0).standard_normal((5, 2)), np.array([0, 1, 2, 0, 1])
    found = side.train_pass(x, y)
    assert found.grad_order == (
        "2.out", "2.1.weight", "2.1.bias", "1.out", "1.weight", "1.bias", "0.out", "0.weight", "0.bias"
    )  # fmt: skip
    for name, param in model.named_parameters():
        assert found.grads[name] is param.grad and float(param.grad.abs().sum()) > 0, name
