"""A TensorBoard event file, written synchronously in the caller's thread.

``torch.utils.tensorboard.SummaryWriter`` hands every event to a background thread and computes
each record's checksum in pure Python; on a 2,000-step run that doubled the wall time on 2 cores
(the thread hand-off per event, and 3 s of checksums). Here events are framed as TFRecords in the
calling thread with the checksum in C (the ``crc32c`` package), and TensorBoard's own protos and
summary builders make the content, so readers see exactly what SummaryWriter would have written.
"""

import itertools
import os
import socket
import struct
import time
from pathlib import Path

import crc32c
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary

_serial = itertools.count()


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: CRC-32C, rotated right by 15 bits, plus a constant."""
    x = crc32c.crc32c(data)
    return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """One TFRecord: length, its checksum, the data, its checksum."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


class EventWriter:
    """One event file in ``logdir`` (created if missing), named as TensorBoard names its own."""

    def __init__(self, logdir: Path) -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.{next(_serial)}"
        self._file = open(logdir / name, "wb")
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: Event) -> None:
        self._file.write(record(event.SerializeToString()))

    def add_summary(self, summary: Summary, step: int | None = None) -> None:
        event = Event(wall_time=time.time(), summary=summary)
        if step is not None:
            event.step = step
        self._write(event)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def scalar_summary(values: dict[str, float]) -> Summary:
    """One Summary holding several scalars: one event per writer per step, however many curves it has."""
    return Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in values.items()])


class LazyWriters:
    """One ``EventWriter`` per sub-run of ``root``, created when the sub-run first gets data: a sub-run
    that never gets any (a stage a run does not have) leaves no directory, so TensorBoard lists no
    empty run for it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.writers: dict[str, EventWriter] = {}

    def __getitem__(self, name: str) -> EventWriter:
        if name not in self.writers:
            self.writers[name] = EventWriter(self.root / name)
        return self.writers[name]

    def scalars(self, name: str, values: dict[str, float], step: int) -> None:
        if values:
            self[name].add_summary(scalar_summary(values), step)

    def flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
