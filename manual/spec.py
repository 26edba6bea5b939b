"""The architecture both twins are built from, and its ``nn.Sequential`` layout."""

from dataclasses import dataclass

ACTIVATION_NAMES = ("relu", "leaky_relu", "sigmoid", "tanh")
LOSS_NAMES = ("cross_entropy", "mse", "bce")


@dataclass(frozen=True)
class Node:
    """One entry of the Sequential: its index (the prefix of its ``state_dict`` names) and kind."""

    index: int
    kind: str  # "linear", "batchnorm", "dropout", or an activation name
    width_in: int
    width_out: int
    bias: bool = True  # a Linear feeding a BatchNorm has none: BN subtracts the mean, so its gradient is 0


@dataclass(frozen=True)
class MLPSpec:
    """Linear → [BatchNorm1d] → activation → [Dropout] → … → Linear, as torch's ``nn.Sequential``.

    ``widths`` lists the input width first and the output width last, so ``(2, 16, 16, 3)`` is
    three Linear layers. With BatchNorm, the hidden Linear layers have no bias (``bias=False``, the
    usual practice): BatchNorm subtracts the batch mean, so such a bias has an exactly zero gradient,
    which both twins can only compute as rounding noise (and Adam would amplify that noise into steps).
    Names follow the Sequential's indices: without BatchNorm and Dropout, Linear ``k`` sits at
    index ``2k`` (``0.weight``, ``0.bias``, ``2.weight``, ...).
    """

    widths: tuple[int, ...]
    activation: str = "relu"
    loss: str = "cross_entropy"
    dropout: float = 0.0
    batchnorm: bool = False

    def __post_init__(self) -> None:
        if len(self.widths) < 2:
            raise ValueError(f"widths needs at least an input and an output width, got {self.widths}")
        if any(int(w) != w or w < 1 for w in self.widths):
            raise ValueError(f"every width must be a positive integer, got {self.widths}")
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(f"unknown activation {self.activation!r}; choose from {', '.join(ACTIVATION_NAMES)}")
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"unknown loss {self.loss!r}; choose from {', '.join(LOSS_NAMES)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {self.dropout}")

    def layout(self) -> list[Node]:
        """Every module of the Sequential, in order; both twins are built from this one list."""
        nodes: list[Node] = []
        last = len(self.widths) - 2
        for k, (fan_in, fan_out) in enumerate(zip(self.widths, self.widths[1:], strict=False)):
            has_bias = k == last or not self.batchnorm
            nodes.append(Node(len(nodes), "linear", fan_in, fan_out, has_bias))
            if k == last:
                break
            if self.batchnorm:
                nodes.append(Node(len(nodes), "batchnorm", fan_out, fan_out))
            nodes.append(Node(len(nodes), self.activation, fan_out, fan_out))
            if self.dropout > 0:
                nodes.append(Node(len(nodes), "dropout", fan_out, fan_out))
        return nodes

    def linears(self) -> list[tuple[int, int, int]]:
        """``(index in the Sequential, in width, out width)`` for each Linear layer."""
        return [(n.index, n.width_in, n.width_out) for n in self.layout() if n.kind == "linear"]

    @property
    def mode_dependent(self) -> bool:
        """Whether training and evaluation mode compute different things (Dropout, BatchNorm)."""
        return self.batchnorm or self.dropout > 0

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Trainable ``state_dict`` name → shape, torch layout (a Linear weight is ``(out, in)``)."""
        shapes: dict[str, tuple[int, ...]] = {}
        for node in self.layout():
            if node.kind == "linear":
                shapes[f"{node.index}.weight"] = (node.width_out, node.width_in)
                if node.bias:
                    shapes[f"{node.index}.bias"] = (node.width_out,)
            elif node.kind == "batchnorm":
                shapes[f"{node.index}.weight"] = (node.width_out,)
                shapes[f"{node.index}.bias"] = (node.width_out,)
        return shapes

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Non-trainable ``state_dict`` entries: BatchNorm's running statistics and batch counter."""
        shapes: dict[str, tuple[int, ...]] = {}
        for node in self.layout():
            if node.kind == "batchnorm":
                shapes[f"{node.index}.running_mean"] = (node.width_out,)
                shapes[f"{node.index}.running_var"] = (node.width_out,)
                shapes[f"{node.index}.num_batches_tracked"] = ()
        return shapes

    def state_dict_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every ``state_dict`` key in torch's order (parameters and buffers of each module together)."""
        parameters, buffers = self.parameter_shapes(), self.buffer_shapes()
        ordered: dict[str, tuple[int, ...]] = {}
        for node in self.layout():
            for table in (parameters, buffers):
                ordered.update({k: v for k, v in table.items() if k.split(".")[0] == str(node.index)})
        return ordered
