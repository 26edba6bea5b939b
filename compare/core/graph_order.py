"""The order of tensors in an autograd graph seen from its output: the backward order, nearest first.

``backward_order(outputs, leaves)`` walks the graph breadth-first from the outputs' ``grad_fn`` and ranks
each leaf by the number of backward nodes between it and the nearest output (ties keep the order given):
the order in which a backward reaches them, so the first failing gradient in it is nearest the mistake.
"""

from collections import deque
from collections.abc import Sequence

import torch


def backward_order(outputs: Sequence[torch.Tensor], leaves: Sequence[torch.Tensor]) -> list[int]:
    """Indices into ``leaves``, nearest the outputs first; a leaf the graph does not reach comes last."""
    where = {id(leaf): i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)}
    depth: dict[int, int] = {}
    queue = deque((out.grad_fn, 0) for out in outputs if isinstance(out, torch.Tensor) and out.grad_fn is not None)
    seen = set()
    while queue:
        node, level = queue.popleft()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)  # an AccumulateGrad: the leaf it accumulates into
        if variable is not None and id(variable) in where:
            depth.setdefault(where[id(variable)], level)
        queue.extend((child, level + 1) for child, _ in node.next_functions)
    unreached = len(seen) + 1
    return sorted(range(len(leaves)), key=lambda i: (depth.get(i, unreached), i))
