"""Nothing lost, checked before the run: output paths that would land inside an earlier run or on an
input file, a model that would not fit in memory, values that overflow when cast to float32. Each is an
``InputError`` (one line, exit 2) raised before anything is written or allocated."""

import itertools
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from compare.errors import InputError

# Bytes per parameter and per activation element, per side: the parameter, its gradient, up to three
# optimizer-state tensors (AMSGrad), the copy a resync or an adjudication makes, and NumPy temporaries;
# each activation is kept with its gradient and a mask. Generous on purpose: a refused run that would
# have fit costs a flag, an accepted one that does not costs the machine.
PARAMETER_COPIES = 8
ACTIVATION_COPIES = 6
RUN_FOLDERS = ("manual", "torch", "parity")  # compare.output.tensorboard's event folders


def is_run_dir(folder: Path) -> bool:
    """A run's directory: the event folders a run makes (``manual/``, ``torch/``, ``parity/``), or a
    report.json that names this very folder as its ``run_dir`` (a ``--json`` copy elsewhere does not)."""
    if all((folder / side).is_dir() for side in RUN_FOLDERS):
        return True
    report = folder / "report.json"
    if not report.is_file():
        return False
    try:
        document = json.loads(report.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and Path(str(document.get("run_dir"))).name == folder.name


def run_dir_of(path: Path) -> Path | None:
    """The run directory holding ``path``: itself or a parent."""
    return next((folder for folder in [path, *path.parents] if is_run_dir(folder)), None)


def check_output_file(flag: str, path: str) -> None:
    """An output file the user named: its folder must exist and it must not be a directory."""
    if not Path(path).parent.is_dir():
        raise InputError(f"{flag} {path}: folder {Path(path).parent} does not exist")
    if Path(path).is_dir():
        raise InputError(f"{flag} {path}: is a directory")


def check_outputs(logdir: Path, files: dict[str, str | None], inputs: dict[str, str | None]) -> None:
    """``files``: ``{flag: path}`` of the files a command writes (``--json``, ``--save-weights``); ``inputs``:
    those it reads (``--data``, ``--weights``). Each output must be a file in an existing folder, writable,
    apart from every input and from the other outputs, and outside any earlier run's directory; so must
    ``--logdir``. The one check of output paths: ``run``, ``check`` and ``experiment`` all call it."""
    for flag, path in files.items():
        if path is not None:
            check_output_file(flag, path)
    if (run := run_dir_of(logdir.resolve())) is not None:
        raise InputError(f"--logdir {logdir}: inside the earlier run {run}; choose a folder of runs, not a run")
    read = {Path(path).resolve(): flag for flag, path in inputs.items() if path is not None}
    seen: dict[Path, str] = {}
    for flag, path in files.items():
        if path is None:
            continue
        resolved = Path(path).resolve()
        if resolved in read:
            raise InputError(f"{flag} {path}: is the {read[resolved]} input file; it would be overwritten")
        if resolved in seen:
            raise InputError(f"{flag} {path}: is also {seen[resolved]}'s file")
        seen[resolved] = flag
        if (run := run_dir_of(resolved.parent)) is not None:
            raise InputError(f"{flag} {path}: inside the earlier run {run}, whose files are never overwritten")
        if not os.access(resolved.parent, os.W_OK) or (resolved.exists() and not os.access(resolved, os.W_OK)):
            raise InputError(f"{flag} {path}: not writable")


def available_memory() -> int | None:
    """Bytes the system can still hand out (``MemAvailable``), or ``None`` where it cannot tell."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def estimate_bytes(layers: tuple[int, ...], batch_size: int, examples: int, itemsize: int) -> int:
    """Both sides' parameters (with gradients and state) and activations, and the data, in bytes."""
    parameters = sum(a * b + b for a, b in itertools.pairwise(layers))
    activations = batch_size * sum(layers)
    per_side = PARAMETER_COPIES * parameters + ACTIVATION_COPIES * activations
    return itemsize * (2 * per_side + examples * (layers[0] + layers[-1]))


def check_memory(layers: tuple[int, ...], batch_size: int, examples: int, itemsize: int) -> None:
    """Refuse a run whose estimate exceeds the memory available, before any of it is allocated."""
    need, have = estimate_bytes(layers, batch_size, examples, itemsize), available_memory()
    if have is not None and need > have:
        raise InputError(
            f"--layers {','.join(map(str, layers))} with --batch-size {batch_size} needs about {need / 2**30:.1f} "
            f"GiB (both sides, with gradients and optimizer state); {have / 2**30:.1f} GiB is available"
        )


def check_cast(flag: str, path: str, arrays: dict[str, np.ndarray], dtype: type) -> None:
    """Values finite as given that overflow to ±inf in the run's dtype (float32's largest is 3.4e38)."""
    limit = float(np.finfo(dtype).max)
    for name, array in arrays.items():
        if array.dtype.kind != "f" or array.dtype.itemsize <= np.dtype(dtype).itemsize or array.size == 0:
            continue
        finite = np.isfinite(array)
        if np.any(np.abs(array[finite]) > limit):
            raise InputError(
                f"{flag} {path}: {name!r} holds values beyond {np.dtype(dtype).name}'s range (±{limit:.3g}); "
                f"they would become inf"
            )


def check_archive_fits(flag: str, path: Path) -> None:
    """An ``.npz`` whose arrays, uncompressed (as the zip's headers state them), exceed the memory
    available is refused before it is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            size = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # not readable as a zip: the reader names the problem
    have = available_memory()
    if have is not None and size > have:
        raise InputError(f"{flag} {path}: its arrays take {size / 2**30:.1f} GiB; {have / 2**30:.1f} GiB is available")
