"""The graph experiment keeps the lecture notes' computational graphs: the bill of apples and oranges
built from multiply and add nodes only, run in the notes' order (build, forward left to right, backward
right to left), with the add node passing its upstream gradient on and the multiply node swapping its
inputs."""

import io

from compare.experiments import graph
from compare.experiments.base import Session


def test_the_bill_is_built_from_the_notes_multiply_and_add_nodes():
    bill = next(g for g in graph.GRAPHS if g.name == "apple_orange")
    assert [(op.kind, op.inputs) for op in bill.ops] == [
        ("mul", ("apple_price", "apple_count")),
        ("mul", ("orange_price", "orange_count")),
        ("add", ("apple_total", "orange_total")),
        ("mul", ("subtotal", "tax")),
    ]
    assert graph.NODES["add"] is graph.AddNode and graph.NODES["mul"] is graph.MulNode


def test_backward_runs_right_to_left_through_the_nodes():
    bill = next(g for g in graph.GRAPHS if g.name == "apple_orange")
    _, local, grads = graph.manual_pass(bill)
    # add node: upstream gradient passed on unchanged (local derivative 1) to both fruit totals
    assert local[("subtotal", "apple_total")] == local[("subtotal", "orange_total")] == 1.0
    assert grads["apple_total"] == grads["orange_total"] == grads["subtotal"] == 1.1
    # multiply node: the upstream gradient times the *other* forward input
    assert local[("price", "tax")] == 650.0 and local[("price", "subtotal")] == 1.1


def test_the_output_states_the_notes_order_first():
    session = Session("graph", None, io.StringIO(), tensorboard=False)
    outcome = graph.EXPERIMENT.run(graph.Params(), session)
    first = outcome.table[0]
    assert (
        first.index("1. build") < first.index("2. forward from left to right") < first.index("3. backward from right")
    )
