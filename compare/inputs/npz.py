"""Reading and writing ``.npz`` files safely: never with pickle, never half-written."""

import os
import tempfile
from pathlib import Path

import numpy as np

from compare.errors import InputError
from compare.inputs.safety import check_input_file


def read_npz(path: Path, flag: str) -> dict[str, np.ndarray]:
    """Every array in ``path``, loaded without pickle; any failure becomes one ``InputError`` line."""
    check_input_file(flag, path)  # by stat, before any open: a FIFO's open never returns
    with path.open("rb") as file:
        magic = file.read(4)
    if magic != b"PK\x03\x04":  # every .npz is a zip archive
        raise InputError(f"{flag} {path}: not an .npz archive (write one with numpy.savez)")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise InputError(f"{flag} {path}: not an .npz archive (a single .npy array?)")
        with loaded as archive:
            return {key: archive[key] for key in archive.files}
    except InputError:
        raise
    except Exception as error:  # a corrupt file can fail in zipfile, zlib, or NumPy's header parser
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"{flag} {path}: cannot read as .npz ({reason})") from None


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically: a temporary file in the same folder, renamed into place when complete."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
