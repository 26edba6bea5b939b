"""The architecture both twins are built from: widths, activation and loss."""

from dataclasses import dataclass

ACTIVATION_NAMES = ("relu", "leaky_relu", "sigmoid", "tanh")
LOSS_NAMES = ("cross_entropy", "mse")


@dataclass(frozen=True)
class MLPSpec:
    """Linear → activation → … → Linear, the layout of torch's ``nn.Sequential``.

    ``widths`` lists the input width first and the output width last, so
    ``(2, 16, 16, 3)`` is three Linear layers with the activation between them.
    Parameter names follow ``nn.Sequential``: Linear ``k`` sits at index ``2k``,
    giving ``0.weight``, ``0.bias``, ``2.weight``, ...
    """

    widths: tuple[int, ...]
    activation: str = "relu"
    loss: str = "cross_entropy"

    def __post_init__(self) -> None:
        if len(self.widths) < 2:
            raise ValueError(f"widths needs at least an input and an output width, got {self.widths}")
        if any(int(w) != w or w < 1 for w in self.widths):
            raise ValueError(f"every width must be a positive integer, got {self.widths}")
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(f"unknown activation {self.activation!r}; choose from {', '.join(ACTIVATION_NAMES)}")
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"unknown loss {self.loss!r}; choose from {', '.join(LOSS_NAMES)}")

    def linears(self) -> list[tuple[int, int, int]]:
        """``(index in the Sequential, in width, out width)`` for each Linear layer."""
        return [(2 * k, self.widths[k], self.widths[k + 1]) for k in range(len(self.widths) - 1)]

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """``state_dict`` name → shape, torch layout (weight is ``(out, in)``)."""
        shapes: dict[str, tuple[int, ...]] = {}
        for index, fan_in, fan_out in self.linears():
            shapes[f"{index}.weight"] = (fan_out, fan_in)
            shapes[f"{index}.bias"] = (fan_out,)
        return shapes
