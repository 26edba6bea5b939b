"""The engine and what it needs: the protocol of a side (``side``), the manual side (``manual_side``),
the torch reference (``torch_side``, ``distributed``), the stages and their order (``stages``), the
engine (``engine``), records, metrics, scales, tolerances and the finite-difference witness."""
