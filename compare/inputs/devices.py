"""Where the torch twin runs: the CPU, or a CUDA GPU set up so that its arithmetic can be compared.

On a GPU, two defaults would make parity meaningless, so ``configure`` turns them off:

* TF32: float32 matrix products and convolutions may round their inputs to a 10-bit mantissa
  (about 1e-3 relative), far above any float32 tolerance; ``fp32_precision = "ieee"`` keeps
  full float32 (torch 2.13's API; the older ``allow_tf32`` flags must not be mixed with it);
* nondeterminism: some kernels (atomics in reductions and scatter) give different roundings from
  run to run; ``torch.use_deterministic_algorithms(True, warn_only=True)`` picks deterministic ones
  wherever torch has them. ``warn_only``: an operation without one (torch's documentation lists
  ``nn.NLLLoss`` on CUDA among those, for some input shapes) then warns, naming itself, instead of
  ending the run; its run-to-run rounding differences are of the size the tolerances already allow
  for a different summation order. cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` set before it starts to
  be deterministic, so it is set here first.

The NumPy side always runs on the CPU; tensors cross over in ``compare.core.engine``.
"""

import os

import torch

from compare.errors import InputError

DEVICES = ("cpu", "cuda")


def resolve(name: str, ranks: int = 1) -> torch.device:
    """The device for ``--device``, checked: a missing GPU is an input error, not a traceback later.
    ``ranks`` processes on one machine need that many GPUs (NCCL cannot share one between ranks)."""
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available here (torch.cuda.is_available() is False)")
    if torch.cuda.device_count() < ranks:
        raise InputError(f"--device cuda with {ranks} processes needs {ranks} GPUs, found {torch.cuda.device_count()}")
    return torch.device("cuda", 0)


def configure(device: torch.device) -> dict[str, str | bool]:
    """Full-precision, deterministic arithmetic on ``device``; returns the settings, for the report."""
    if device.type != "cuda":
        return {"device": "cpu"}
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    torch.backends.cudnn.fp32_precision = "ieee"
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.cuda.set_device(device)
    return {
        "device": f"cuda:{device.index} ({torch.cuda.get_device_name(device)})",
        "matmul_fp32_precision": torch.backends.cuda.matmul.fp32_precision,
        "cudnn_fp32_precision": torch.backends.cudnn.fp32_precision,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cublas_workspace_config": os.environ["CUBLAS_WORKSPACE_CONFIG"],
    }
