"""The benchmark suite (``backprop-parity bench``: ``suite``) and further measurements: memory,
sensitivity, TensorBoard's cost."""
