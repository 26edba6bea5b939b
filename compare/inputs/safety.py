"""Nothing lost, checked before the run: inputs that are not regular files (a FIFO, a device, a folder),
output paths that cannot be created or would land inside an earlier run or on an input file, a model or
one-hot targets that would not fit in memory, values that overflow when cast to float32. Each is an
``InputError`` (one line, exit 2) raised before anything is written, allocated or opened."""

import itertools
import json
import os
import re
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from compare.errors import InputError
from compare.inputs.flags import flag as flag_of

# Bytes per parameter and per activation element, per side: the parameter, its gradient, up to three
# optimizer-state tensors (AMSGrad), the copy a resync or an adjudication makes, the parameter, gradient
# and state kept from before each step (compare.core.rewind), and NumPy temporaries; each activation is
# kept with its gradient and a mask. Generous on purpose: a refused run that would have fit costs a flag,
# an accepted one that does not costs the machine.
PARAMETER_COPIES = 12
ACTIVATION_COPIES = 6
RUN_FOLDERS = ("manual", "torch", "parity")  # compare.output.tensorboard's event folders
# Kernel pseudo-filesystems: a file there is an interface to the kernel, never a place for a report.
PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")
KINDS = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
KINDS |= {stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a directory"}


def kind_of(mode: int) -> str | None:
    """What a ``stat`` mode that is not a regular file is, in words (``None`` for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in KINDS.items() if test(mode)), "not a regular file")


# What a path may not be longer than when the system cannot say (Linux's PATH_MAX and NAME_MAX).
PATH_MAX, NAME_MAX = 4096, 255


def check_path(flag: str, path: str | Path) -> None:
    """A path the system can take: no NUL byte, no name longer than its folder allows, not longer than
    ``PATH_MAX``, and resolvable (no symbolic-link loop on the way)."""
    text = os.fspath(path)
    if "\0" in text:
        raise InputError(f"{flag} {text!r}: holds a NUL byte, which no path can")
    if len(os.fsencode(text)) > PATH_MAX:
        raise InputError(f"{flag} {text[:60]}...: longer than the {PATH_MAX} bytes a path may have")
    parts = Path(text).parts
    for index, part in enumerate(parts):
        if len(os.fsencode(part)) > NAME_MAX:
            which = "the file name" if index == len(parts) - 1 else f"the folder name {part[:20]}..."
            raise InputError(f"{flag} {text}: {which} is longer than the {NAME_MAX} bytes its folder allows")
    try:
        Path(text).resolve()
        os.stat(text)
    except FileNotFoundError:
        pass  # not there yet: an output is made, an input's absence is said where it is read
    except (RuntimeError, OSError) as error:  # RuntimeError: Python before 3.13 on a symbolic-link loop
        reason = getattr(error, "strerror", None) or "a loop of symbolic links"
        if "Symlink loop" in str(error):
            reason = "a loop of symbolic links"
        raise InputError(f"{flag} {text}: cannot be resolved ({reason})") from None


def check_input_file(flag: str, path: str | Path) -> None:
    """An input the user named must be a readable regular file. Decided by ``stat`` alone: opening a FIFO
    would wait for a writer forever, and reading a device may never end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{flag} {path}: no such file") from None
    except OSError as error:
        raise InputError(f"{flag} {path}: cannot be read ({error.strerror})") from None
    if (kind := kind_of(mode)) is not None:
        raise InputError(f"{flag} {path}: is {kind}, not a regular file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{flag} {path}: not readable")


def on_pseudo_filesystem(path: Path) -> bool:
    return any(path == Path(root) or Path(root) in path.parents for root in PSEUDO_FILESYSTEMS)


def check_creatable(flag: str, path: Path, folder: Path) -> None:
    """A file can be made in ``folder``: tried by creating and removing a temporary file there (write
    permission bits alone do not tell: a read-only mount, /proc, a full disk)."""
    if on_pseudo_filesystem(folder.resolve()):
        raise InputError(f"{flag} {path}: {folder} is a kernel pseudo-filesystem, not a place for files")
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".backprop-parity-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise InputError(f"{flag} {path}: cannot create a file in {folder} ({error.strerror})") from None


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
    """An output file the user named: a regular file (or none yet) in an existing folder where a file
    can be created; never a FIFO or a device (writing would block or go to the hardware)."""
    if not Path(path).parent.is_dir():
        raise InputError(f"{flag} {path}: folder {Path(path).parent} does not exist")
    longest = os.pathconf(Path(path).parent, "PC_NAME_MAX")
    if len(os.fsencode(Path(path).name)) > longest:
        raise InputError(f"{flag} {path}: the file name is longer than the {longest} bytes its folder allows")
    if Path(path).exists() and (kind := kind_of(os.stat(path).st_mode)) is not None:
        raise InputError(f"{flag} {path}: is {kind}, not a regular file")
    check_creatable(flag, Path(path), Path(path).parent)


def check_logdir(logdir: Path) -> None:
    """``--logdir``: a folder (or none yet) whose nearest existing ancestor takes new files; never the root
    folder (a run would make its probe file and its directory there)."""
    if logdir.resolve() == Path(logdir.resolve().anchor):
        raise InputError(f"--logdir {logdir}: is the root folder; choose a folder for runs")
    if logdir.exists() and not logdir.is_dir():
        kind = kind_of(os.stat(logdir).st_mode) or "a file"
        raise InputError(f"--logdir {logdir}: exists and is not a directory (it is {kind})")
    existing = next(folder for folder in [logdir, *logdir.absolute().parents] if folder.exists())
    if not existing.is_dir():
        raise InputError(f"--logdir {logdir}: {existing} is not a folder")
    check_creatable("--logdir", logdir, existing)


def check_outputs(logdir: Path, files: dict[str, str | None], inputs: dict[str, str | None]) -> None:
    """``files``: ``{flag: path}`` of the files a command writes (``--json``, ``--save-weights``); ``inputs``:
    those it reads (``--data``, ``--weights``). Each output must be a file in an existing folder, writable,
    apart from every input and from the other outputs, and outside any earlier run's directory; so must
    ``--logdir``. Every input must be a regular file. The one check of paths: ``run``, ``check`` and
    ``experiment`` all call it."""
    for flag, path in [("--logdir", logdir), *files.items(), *inputs.items()]:
        if path is not None:
            check_path(flag, path)
    for flag, path in inputs.items():
        if path is not None:
            check_input_file(flag, path)
    check_logdir(logdir)
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


def check_memory(layers: tuple[int, ...], batch_size: int, examples: int, itemsize: int, source: str = "") -> None:
    """Refuse a run whose estimate exceeds the memory available, before any of it is allocated.
    ``source``: where the widths came from when the user did not give ``--layers`` (the labels, say)."""
    need, have = estimate_bytes(layers, batch_size, examples, itemsize), available_memory()
    if have is not None and need > have:
        widths = ",".join(map(str, layers))
        what = f"{source} imply layers {widths}; with" if source else f"--layers {widths} with"
        raise InputError(
            f"{what} --batch-size {batch_size} the run needs about {need / 2**30:.1f} "
            f"GiB (both sides, with gradients and optimizer state); {have / 2**30:.1f} GiB is available"
        )


def check_one_hot(largest: int, examples: int, width: int) -> None:
    """One-hot targets (``--loss mse`` on labels) take ``examples × width`` float64s; refused, naming the
    largest label, when that exceeds the memory available."""
    need, have = 8 * examples * width, available_memory()
    if have is not None and need > have:
        raise InputError(
            f"label {largest} makes one-hot targets of {examples} x {width} float64 ({need / 2**30:.1f} GiB); "
            f"{have / 2**30:.1f} GiB is available (labels should be 0 .. C-1 for C classes)"
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


def divergence_suspect(config, X: np.ndarray, lr: float) -> str:
    """The input to look at when both sides diverged alike: a hyperparameter far outside any usual range,
    a schedule that grows the learning rate, data of a huge scale, else the learning rate ``lr`` the run
    used (the optimizer's default when none was given)."""
    for key, value in config.hyperparameters.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > 10:
            return f"{flag_of(key)} {value:g}"
    growth = re.findall(r"(?:exp:|step:\d+:)([^,:]+)", config.lr_schedule or "")
    if any(float(gamma) > 1 for gamma in growth):
        return f"--lr-schedule {config.lr_schedule} (it grows the learning rate)"
    scale = float(np.max(np.abs(X), initial=0.0))
    if config.data is not None and scale > 1e3:
        return f"--data (|x| up to {scale:.3g})"
    return f"--lr {lr:g} (try a smaller one)"
