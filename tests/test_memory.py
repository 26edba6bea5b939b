"""The twins never share memory: a shared buffer would make every comparison vacuous."""

import numpy as np
import torch

from compare.core import engine, mlp_pair
from conftest import HOSTILE_WIDTHS, make_batches
from manual import MLPSpec, init_state_dict
from manual.optim import Adam
from torch_ref import export_weights


def test_no_tensor_is_shared_between_the_twins_or_with_the_initial_weights():
    spec = MLPSpec(HOSTILE_WIDTHS, "relu", "mse")
    weights = init_state_dict(spec, np.random.default_rng(0))
    original = {name: array.copy() for name, array in weights.items()}
    lockstep = mlp_pair.twins(spec, weights, "adam", Adam(lr=0.1).hyperparameters(), "float64")
    engine.run(lockstep, make_batches(spec, "float64", 1), 3, True, lambda r: None)

    manual = lockstep.manual.parameters()
    torch_params = dict(lockstep.reference.model.named_parameters())
    for name, array in manual.items():
        torch_view = torch_params[name].detach().numpy()  # a view of torch's own storage
        assert not np.shares_memory(array, torch_view), name
        assert not np.shares_memory(array, weights[name]), name
        assert not np.shares_memory(torch_view, weights[name]), name
        assert not np.array_equal(array, original[name]), f"{name} did not train"
        np.testing.assert_array_equal(weights[name], original[name])  # the caller's arrays are untouched
    for name, state in lockstep.manual.optimizer_state.items():
        torch_state = lockstep.reference.optimizer.state[torch_params[name]]
        for key in ("exp_avg", "exp_avg_sq"):
            assert not np.shares_memory(state[key], torch_state[key].numpy()), f"{name}.{key}"


def test_exported_weights_are_copies():
    spec = MLPSpec(HOSTILE_WIDTHS, "tanh", "cross_entropy")
    lockstep = mlp_pair.twins(spec, init_state_dict(spec, np.random.default_rng(0)), "sgd", {"lr": 0.1}, "float64")
    exported = export_weights(lockstep.reference.model)
    with torch.no_grad():
        for param in lockstep.reference.model.parameters():
            param.add_(1.0)
    for name, param in lockstep.reference.model.named_parameters():
        assert not np.allclose(exported[name], param.detach().numpy()), name
