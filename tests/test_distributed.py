"""Data-parallel parity (``run --world-size N``, torchrun) and the CUDA twin (``--device cuda``).

The data-parallel tests start real processes: gloo over 127.0.0.1, started by the run command itself
(torch.multiprocessing) or by torchrun. Every one runs under a bounded timeout. The CUDA tests need
a GPU and are skipped without one; the "no GPU" contract is tested where there is none.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli import run_dirs

from compare.core import distributed, engine, mlp_pair
from compare.core.stages import STAGES
from compare.core.tolerances import tolerance
from compare.inputs import world
from compare.inputs.config import RunConfig
from compare.inputs.prepare import batch_stream, prepare
from conftest import invoke

pytestmark = pytest.mark.distributed
PROGRAM = [sys.executable, "-m", "compare"]
RUN_TIMEOUT_S = 240  # far above a 2-rank run of 20 steps (~8 s on 2 cores): only a hang reaches it
HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")


def run(tmp_path: Path, *args: str, steps: int = 20, env: dict | None = None) -> tuple[int, str, str, dict | None]:
    """The real program in a subprocess; returns (status, stdout, stderr, report or None)."""
    report = tmp_path / "report.json"
    argv = [*PROGRAM, "run", "--steps", str(steps), "--logdir", str(tmp_path / "runs"), "--json", str(report), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env)
    return done.returncode, done.stdout, done.stderr, json.loads(report.read_text()) if report.exists() else None


def assert_parity(status: int, out: str, err: str, document: dict, world_size: int | None) -> None:
    assert status == 0, out + err
    assert document["passed"] and document["complete"]
    assert document["config"]["world_size"] == world_size
    for stage, worst in document["worst"].items():
        assert worst["max_rel"] <= document["tolerances"][stage]["max_rel"], (stage, worst)


# Every optimizer under DDP, each with one more feature the replicas must keep in step: a schedule
# (stepped on every rank), clipping (on the all-reduced gradients), dropout (rank 0's masks, split
# by rows), three ranks, float32.
OPTIMIZER_CASES = [
    ("sgd", ["--lr-schedule", "step:5:0.5"]),
    ("momentum", ["--clip-grad-norm", "0.5"]),
    ("nesterov", ["--dropout", "0.3"]),
    ("adam", ["--world-size", "3", "--batch-size", "33"]),
    ("adamw", ["--dtype", "float32"]),
    ("rmsprop", ["--centered", "--lr-schedule", "warmup:4,cosine:16"]),
    ("adagrad", ["--dropout", "0.2", "--clip-grad-norm", "1"]),
]


@pytest.mark.parametrize(("optimizer", "extra"), OPTIMIZER_CASES, ids=[case[0] for case in OPTIMIZER_CASES])
def test_every_optimizer_holds_parity_under_ddp(optimizer, extra, tmp_path):
    args = ["--world-size", "2", "--optimizer", optimizer, *extra]  # a later --world-size wins
    status, out, err, document = run(tmp_path, *args)
    world_size = 3 if "3" in extra else 2
    assert_parity(status, out, err, document, world_size)
    assert f"as {world_size} DDP ranks (gloo)" in out
    assert document["steps"] == 20
    # Rank 0 alone writes: one run directory, with the event files of each sub-run and the report.
    (run_dir,) = run_dirs(tmp_path / "runs")
    assert (run_dir / "report.json").is_file()
    assert all(list((run_dir / sub).glob("events.out.tfevents.*")) for sub in ("manual", "torch", "parity/grad"))


def test_a_wrong_rule_is_caught_under_ddp_at_the_step_and_tensor_it_acts(tmp_path):
    """A cross-entropy gradient without the 1/B of the mean is B times torch's: B = 32, the global batch,
    so the gathered dL/d(output) is the full batch's (each rank's own is for its 16 rows, ×1/2)."""
    args = ("--world-size", "2", "--batch-size", "32", "--inject", "cross-entropy-grad-without-mean")
    status, out, err, document = run(tmp_path, *args, steps=3)
    assert status == 1, out + err
    failure = document["first_failure"]
    assert (failure["step"], failure["stage"], failure["tensor"]) == (1, "grad", "4.out")
    for element in failure["worst_elements"]:
        assert element["manual"] / element["torch"] == pytest.approx(32, rel=1e-12)


def test_ranks_train_on_disjoint_shards_and_rank0_compares_the_full_batch(tmp_path):
    """In-process rank 0 and one spawned rank: rank 0's own replica saw half the batch, and what it
    compared (gathered from both ranks) is the full batch; the parameter gradients, all-reduced by
    DDP, equal the manual full-batch gradients."""
    prepared = prepare(RunConfig(world_size=2, batch_size=16))
    config = prepared.config
    pair = mlp_pair.Pair(config.spec, prepared.weights, config.optimizer, config.hyperparameters, config.dtype)
    member = world.membership(2)
    group = distributed.Group(member, torch.device("cpu"), 60.0, prepared)
    try:
        reference = group.side(mlp_pair.torch_twin(pair), config.spec, None)
        lockstep = engine.Lockstep(mlp_pair.manual_side(pair), reference)
        x, y = next(batch_stream(prepared))
        record = lockstep.step(1, x, y)
        group.close()
    finally:
        if not group.closed:
            group.abort()
    assert record.first_failure is None
    assert group.replica.outputs[0].shape[0] == 8  # rank 0's replica ran rows 0..7 only
    forward = {check.tensor: check for check in record.checks if check.stage == "forward"}
    assert set(forward) == {f"{i}.out" for i in range(len(lockstep.reference.model))}
    grads = {check.tensor: check for check in record.checks if check.stage == "grad"}
    assert {"0.weight", "0.bias", "4.weight", "4.bias"} <= set(grads)
    assert all(check.diff.max_rel <= 1e-12 for check in grads.values())


def test_shards_are_equal_contiguous_and_cover_the_batch():
    batch, world = 12, 3
    rows = [np.arange(batch)[distributed.shard(batch, rank, world)] for rank in range(world)]
    assert [len(r) for r in rows] == [4, 4, 4]
    np.testing.assert_array_equal(np.concatenate(rows), np.arange(batch))


def worker_pids(parent: int) -> list[int]:
    """The processes ``parent`` spawned as ranks (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    pids = []
    for pid in map(int, children):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            pids.append(pid)
    return pids


def start_long_run(tmp_path: Path, *extra: str) -> subprocess.Popen:
    argv = [*PROGRAM, "run", "--world-size", "2", "--steps", "100000", "--logdir", str(tmp_path / "runs"), *extra]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    for line in process.stdout:  # the ranks are up once rank 0 prints its first step
        if line.startswith("step"):
            break
    return process


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=RUN_TIMEOUT_S)
    return process.returncode, out, err


def assert_no_rank_left(pids: list[int]) -> None:
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and b"Z" not in status_of(pid)]
    assert not alive, f"ranks still running: {alive}"


def status_of(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().split(b")")[-1][:3]
    except FileNotFoundError:
        return b" Z"


@pytest.mark.parametrize(
    ("sig", "message"),
    [
        (signal.SIGKILL, "rank 1 exited with code -9 during the run"),
        (signal.SIGSTOP, "no reply within --dist-timeout 10 s"),  # hung: alive, never answering
    ],
    ids=["killed", "hung"],
)
def test_a_dead_or_hung_rank_ends_the_run_with_exit_3_and_a_report(sig, message, tmp_path):
    process = start_long_run(tmp_path, "--dist-timeout", "10")
    pids = worker_pids(process.pid)
    assert len(pids) == 1
    os.kill(pids[0], sig)
    started = time.monotonic()
    status, out, err = finish(process)
    waited = time.monotonic() - started
    assert status == 3, out + err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert waited < 10 + 30  # the timeout, plus start-up and cleanup slack on a loaded 2-core machine
    assert_no_rank_left(pids)
    (run_dir,) = run_dirs(tmp_path / "runs")
    document = json.loads((run_dir / "report.json").read_text())
    assert not document["complete"] and not document["passed"] and document["steps"] >= 1


def test_ctrl_c_stops_every_rank_at_a_step_boundary(tmp_path):
    process = start_long_run(tmp_path)
    pids = worker_pids(process.pid)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole process group
    status, out, err = finish(process)
    assert status == 130, out + err
    assert "Traceback" not in err
    assert_no_rank_left(pids)
    (run_dir,) = run_dirs(tmp_path / "runs")
    document = json.loads((run_dir / "report.json").read_text())
    assert not document["complete"] and document["steps"] >= 1


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_torchrun_starts_the_ranks_and_rank0_alone_writes(tmp_path):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    report = tmp_path / "report.json"
    argv = [
        torchrun,
        "--standalone",  # a rendezvous on this machine's loopback, at a free port
        "--nproc-per-node",
        "2",
        "-m",
        "compare",
        "run",
        "--steps",
        "15",
        "--optimizer",
        "momentum",
        "--dropout",
        "0.25",
        "--logdir",
        str(tmp_path / "runs"),
        "--json",
        str(report),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    document = json.loads(report.read_text())
    assert_parity(done.returncode, done.stdout, done.stderr, document, 2)
    assert len(run_dirs(tmp_path / "runs")) == 1


TORCHRUN_ENV = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--world-size", "0"], "--world-size must be between 1 and 64, got 0"),
        (["--world-size", "65"], "--world-size must be between 1 and 64, got 65"),
        (["--world-size", "3", "--batch-size", "32"], "--batch-size 32 must be a multiple of the world size 3"),
        (["--world-size", "2", "--batchnorm"], "--batchnorm with --world-size > 1 needs --device cuda"),
        (["--dist-timeout", "0"], "--dist-timeout must be a positive number of seconds, got 0.0"),
        (["--dist-timeout", "nan"], "--dist-timeout must be a positive number of seconds, got nan"),
        (["--world-size", "two"], "argument --world-size: invalid int value: 'two'"),
        (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    ],
)
def test_bad_distributed_input_is_one_line_and_exit_2_before_anything_starts(args, message, tmp_path, capsys):
    status, _, err = invoke(["run", "--steps", "3", "--logdir", str(tmp_path / "runs"), *args], capsys)
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert run_dirs(tmp_path / "runs") == []


def test_a_world_size_that_disagrees_with_torchrun_is_refused(tmp_path, capsys, monkeypatch):
    for name, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(name, value)
    status, _, err = invoke(["run", "--world-size", "3", "--logdir", str(tmp_path / "runs")], capsys)
    assert status == 2
    assert "--world-size 3 disagrees with torchrun's WORLD_SIZE=2" in err


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a GPU: the refusal cannot be seen here")
def test_device_cuda_without_a_gpu_exits_2_with_a_clear_message(tmp_path, capsys):
    status, _, err = invoke(["run", "--device", "cuda", "--logdir", str(tmp_path / "runs")], capsys)
    assert status == 2
    assert err.strip() == (
        "backprop-parity: error: --device cuda: no CUDA device is available here (torch.cuda.is_available() is False)"
    )
    assert run_dirs(tmp_path / "runs") == []


def test_every_stage_has_a_tolerance_on_each_device_with_its_reason():
    for device in ("cpu", "cuda", "cuda:1"):
        for dtype in ("float64", "float32"):
            for stage in STAGES:
                entry = tolerance(dtype, stage, device)
                assert 0 < entry.max_rel < 1e-3 and entry.reason
    assert "TF32" in tolerance("float32", "grad", "cuda").reason


@needs_cuda
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_twin_holds_parity_with_tf32_off_and_deterministic_kernels(dtype, tmp_path):
    status, out, err, document = run(tmp_path, "--device", "cuda", "--dtype", dtype, "--dropout", "0.2", steps=50)
    assert_parity(status, out, err, document, None)
    settings = document["config"]["device_settings"]
    assert settings["device"].startswith("cuda:0")
    assert settings["matmul_fp32_precision"] == "ieee" and settings["cudnn_fp32_precision"] == "ieee"
    assert settings["deterministic_algorithms"] is True


@needs_cuda
def test_cuda_ddp_with_sync_batchnorm_holds_parity(tmp_path):
    ranks = min(2, torch.cuda.device_count())
    args = ["--device", "cuda", "--world-size", str(ranks), "--batchnorm", "--batch-size", "32"]
    status, out, err, document = run(tmp_path, *args)
    assert_parity(status, out, err, document, ranks)
    assert "(nccl)" in out
