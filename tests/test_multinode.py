"""The README's multi-machine path, ``torchrun --nnodes 2 --rdzv-backend c10d``, as two nodes of one
process each on 127.0.0.1: a real rendezvous, two torchrun agents, gloo between them."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.distributed

TORCHRUN = Path(sys.executable).parent / "torchrun"
RUN_TIMEOUT_S = 240  # far above two ranks of 10 steps (about 10 s on 2 busy cores): only a hang reaches it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(not TORCHRUN.exists(), reason="no torchrun")
def test_two_nodes_of_one_process_each_agree_and_one_writes(tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = []
    for node in range(2):
        argv = [
            str(TORCHRUN),
            "--nnodes", "2", "--nproc-per-node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "parity",
            "-m", "compare", "run", "--steps", "10", "--optimizer", "adam", "--dropout", "0.25",
            "--logdir", str(tmp_path / f"node{node}"), "--json", str(tmp_path / f"node{node}.json"),
        ]  # fmt: skip
        nodes.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [node.communicate(timeout=RUN_TIMEOUT_S) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    reports = [path for path in tmp_path.glob("node*.json")]
    assert len(reports) == 1  # rank 0, on whichever node the rendezvous made it, alone writes
    document = json.loads(reports[0].read_text())
    assert document["passed"] and document["complete"] and document["config"]["world_size"] == 2
    run_dirs = [
        run for node in range(2) if (tmp_path / f"node{node}").exists() for run in (tmp_path / f"node{node}").iterdir()
    ]
    assert len(run_dirs) == 1
