"""``ptycho train --strategy multiworker`` with two real worker processes on 127.0.0.1.

Each worker is its own process with its own ``TF_CONFIG`` (free loopback ports), home, temporary
and cache directories, and runs in its own working directory; the dataset and ``--out`` are shared,
as on a cluster's shared filesystem. Every wait is bounded by a subprocess timeout. Only loopback
addresses appear in the cluster, so the workers talk to nobody else.

A worker is made to fail from inside (a batch hook that sends its own process SIGKILL or SIGSTOP
at a given step of the second epoch), so the failure falls mid-epoch at a known point; the
survivor runs the real command line.

Slow-marked: each test starts TensorFlow in two processes and compiles the step in both.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
import yaml

from ptycho.config.simulate import SimulateConfig
from ptycho.config.train import ClusterConfig, ModelConfig, TrainConfig
from ptycho.models.bundle import all_finite, load_bundle, save_bundle
from ptycho.workflows.simulate import simulate
from ptycho.workflows.train import train

pytestmark = pytest.mark.slow

N = 32
EPOCHS = 2
HEARTBEAT_S = 5.0
CONFIG = TrainConfig(model=ModelConfig(n_filters_scale=1), epochs=EPOCHS, batch_size=8, seed=3,
                     strategy="multiworker", cluster=ClusterConfig(heartbeat_timeout_s=HEARTBEAT_S))
"""57 training groups of 64 (10 % validation) → 7 steps of 8 groups, 4 per worker."""

RUN_TIMEOUT_S = 900
"""Bound on one worker process (start, compile, two epochs) on a shared 2-core machine."""
STOP_BOUND_S = 60.0
"""A survivor must have exited this long after its peer died or froze: a dead peer breaks its
connections at once, a frozen one misses its heartbeats (``HEARTBEAT_S``); the rest is the
survivor's own shutdown, on a loaded machine."""
LOSS_RTOL = 1e-5
"""Two workers vs. one process on one device, same global batch and seed: the same groups in every
step and the same mean gradient, only summed in another order (each worker over its 4 groups, then
over the workers). That changes float32 rounding (~1e-7 relative), which training carries along
and Adam can enlarge (its update is about ±lr wherever a gradient is near zero, whatever its
size): observed 6.6e-8 and 1.3e-7 here (7 steps per epoch); more steps drift further (3e-5 after
28 noisy steps in the benchmark). A worker training the other's groups too, or missing some,
changes the gradient by O(1) and the first epoch's loss by far more than this."""
SPLIT_RTOL = 1e-9
"""Two workers vs. one process on two devices (``mirrored``), which splits every batch sum the same
way: the same arithmetic, so the training losses agree exactly (observed equal to the last digit);
the tolerance only allows for a last-bit difference in the final float64 average."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held open together, so they differ)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def ptycho_command() -> list[str]:
    script = shutil.which("ptycho", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "ptycho_cli.app"]


MIRRORED = textwrap.dedent(
    """
    # one process, two logical CPU devices (set before TensorFlow starts), strategy mirrored
    import json, sys
    from pathlib import Path
    import tensorflow as tf
    import yaml
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from ptycho.config.train import TrainConfig
    from ptycho.workflows.train import train

    data, out, config_file = sys.argv[1:4]
    config = TrainConfig.model_validate(yaml.safe_load(Path(config_file).read_text())["train"])
    result = train(config.model_copy(update={"strategy": "mirrored"}), Path(data), Path(out))
    print(json.dumps(result.history))
    """
)

VICTIM = textwrap.dedent(
    """
    # a worker that fails at (epoch, step) of training: SIGKILL (dies) or SIGSTOP (freezes); the
    # pipeline's batch reader is wrapped as the NaN-guard tests do, to know where training is
    import os, signal, sys, time
    from pathlib import Path
    import yaml
    import ptycho.data.pipeline as pipeline
    from ptycho.config.train import TrainConfig
    from ptycho.workflows.train import train

    data, out, config_file, how, epoch, step = sys.argv[1:7]
    config = TrainConfig.model_validate(yaml.safe_load(Path(config_file).read_text())["train"])
    at = {"epoch": -1, "step": 0}
    batch_rows, read_group_batch = pipeline.batch_rows, pipeline.read_group_batch

    def rows_of_epoch(*args, **kwargs):  # called once per training epoch, before its batches are read
        if kwargs.get("shuffle"):
            at.update(epoch=kwargs.get("epoch", 0), step=0)
        return batch_rows(*args, **kwargs)

    def failing(*args, **kwargs):
        if (at["epoch"], at["step"]) == (int(epoch), int(step)):
            Path("failed_at").write_text(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        at["step"] += 1
        return read_group_batch(*args, **kwargs)

    pipeline.batch_rows, pipeline.read_group_batch = rows_of_epoch, failing
    train(config, Path(data), Path(out))
    """
)


class Cluster:
    """Two (or more) worker processes of one training, each in its own directory."""

    def __init__(self, root: Path, n: int = 2):
        self.root, self.ports = root, free_ports(n)
        self.procs: dict[int, subprocess.Popen] = {}

    def workdir(self, rank: int) -> Path:
        path = self.root / f"worker{rank}"
        for sub in ("home", "tmp", "pycache", "mpl"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        return path

    def env(self, rank: int) -> dict[str, str]:
        own = self.workdir(rank)
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in self.ports]},
                     "task": {"type": "worker", "index": rank}}
        return dict(os.environ, TF_CONFIG=json.dumps(tf_config), HOME=str(own / "home"),
                    KERAS_HOME=str(own / "home" / ".keras"), TMPDIR=str(own / "tmp"),
                    PYTHONPYCACHEPREFIX=str(own / "pycache"), MPLCONFIGDIR=str(own / "mpl"),
                    CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")

    def start(self, rank: int, args: list[str]) -> None:
        own = self.workdir(rank)
        self.procs[rank] = subprocess.Popen(
            args, cwd=own, env=self.env(rank), text=True,
            stdout=open(own / "stdout.txt", "w"), stderr=open(own / "stderr.txt", "w"))

    def start_cli(self, rank: int, *args: object) -> None:
        self.start(rank, [*ptycho_command(), "train", *map(str, args)])

    def start_victim(self, rank: int, data: Path, out: Path, config: Path, how: str, epoch: int, step: int) -> None:
        self.start(rank, [sys.executable, "-c", VICTIM, str(data), str(out), str(config), how, str(epoch), str(step)])

    def wait(self, rank: int, timeout: float = RUN_TIMEOUT_S) -> tuple[int, float]:
        """Exit code and the time it was seen (polled every 0.1 s)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            code = self.procs[rank].poll()
            if code is not None:
                return code, time.time()
            time.sleep(0.1)
        raise AssertionError(f"worker {rank} still running after {timeout:.0f} s")

    def output(self, rank: int, name: str = "stderr.txt") -> str:
        return (self.workdir(rank) / name).read_text()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()  # SIGKILL also ends a stopped process
                proc.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path / "workers")
    yield c
    c.stop_all()


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """The 'shared filesystem': the dataset and the config file every worker reads."""
    root = tmp_path_factory.mktemp("shared")
    simulate(SimulateConfig(N=N, noise=False, seed=1, object={"size": 96}, scan={"n_images": 64}),
             root / "data.h5", preview=False)
    (root / "train.yaml").write_text(yaml.safe_dump({"train": CONFIG.model_dump(mode="json")}))
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_workers_train_like_one_process(cluster, shared, tmp_path):
    """Both finish; the chief's bundle loads and its loss curve is the one-process curve of the
    same global batch and seed; nothing outside the chief's bundle and each worker's own
    directory was written."""
    out = shared / "model"
    before = snapshot(shared)
    t0 = time.time()
    for rank in (0, 1):
        cluster.start_cli(rank, shared / "data.h5", "--out", out, "--config", shared / "train.yaml", "--json")
    codes = [cluster.wait(rank) for rank in (0, 1)]
    print(f"\ntwo workers: {codes[0][1] - t0:.1f} s and {codes[1][1] - t0:.1f} s")
    assert [c for c, _ in codes] == [0, 0], cluster.output(0)[-2000:] + cluster.output(1)[-2000:]

    bundle = load_bundle(out)  # verifies every file against the manifest
    assert bundle.history.epochs == EPOCHS and all_finite(bundle.model)
    assert json.loads(cluster.output(0, "stdout.txt"))["epochs"] == EPOCHS
    assert json.loads(cluster.output(1, "stdout.txt"))["worker"] == "1 of 2"

    after = snapshot(shared)
    assert {k: v for k, v in after.items() if not k.startswith("model/")} == before  # inputs untouched
    written = {k.split("/", 1)[1] for k in after if k.startswith("model/")}
    assert written == {"config.json", "model.weights.h5", "probe.npy", "scale.json", "history.json",
                       "optimizer.npz", "manifest.json", "loss.png", "config.yaml"}  # no temp, no second copy
    assert set(os.listdir(tmp_path)) == {"workers"}  # the rest of the test folder: only the workers' own

    single = train(CONFIG.model_copy(update={"strategy": "default"}), shared / "data.h5", tmp_path / "single")
    two = bundle.history
    print(f"loss, two workers {two.loss} vs one process {single.history['loss']}; "
          f"val {two.val_loss} vs {single.history['val_loss']}")
    assert np.isfinite(two.loss).all() and two.loss[1] < two.loss[0]
    np.testing.assert_allclose(two.loss, single.history["loss"], rtol=LOSS_RTOL)
    np.testing.assert_allclose(two.val_loss, single.history["val_loss"], rtol=LOSS_RTOL)

    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", MIRRORED, str(shared / "data.h5"), str(tmp_path / "mirrored"),
                           str(shared / "train.yaml")], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    split = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"loss, two workers {two.loss} vs one process on two devices {split['loss']}")
    np.testing.assert_allclose(two.loss, split["loss"], rtol=SPLIT_RTOL)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize(("victim", "how", "symptom"), [
    (1, "kill", "closed its connection"),
    (0, "kill", "closed its connection"),
    (1, "stop", "went silent"),
], ids=["worker-dies", "chief-dies", "worker-freezes"])
def test_a_lost_worker_stops_the_other_in_bounded_time(cluster, shared, tmp_path, victim, how, symptom):
    """One worker dies (SIGKILL) or freezes (SIGSTOP) in the middle of the second epoch: the other
    exits 1 within ``STOP_BOUND_S`` with one line naming the lost worker, and the bundle of the
    first epoch is complete and loads. After a death, restarting both with --resume finishes."""
    out = tmp_path / "model"
    survivor = 1 - victim
    cluster.start_victim(victim, shared / "data.h5", out, shared / "train.yaml", how, epoch=1, step=3)
    cluster.start_cli(survivor, shared / "data.h5", "--out", out, "--config", shared / "train.yaml", "--quiet")
    code, stopped = cluster.wait(survivor)
    failed_at = float((cluster.workdir(victim) / "failed_at").read_text())
    print(f"\n{how} worker {victim}: worker {survivor} exited {code} after {stopped - failed_at:.1f} s")
    assert code == 1
    line = one_error_line(cluster.output(survivor))
    print(line)
    assert line.startswith(f"error: cluster: worker {victim} ") and symptom in line, line
    assert f"127.0.0.1:{cluster.ports[victim]}" in line, line
    assert line.endswith("bundle (epoch 1); restart every worker with --resume to continue it"), line
    assert stopped - failed_at < STOP_BOUND_S

    bundle = load_bundle(out)
    assert bundle.history.epochs == 1 and all_finite(bundle.model)
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    if how != "kill" or victim != 1:
        return
    cluster.stop_all()
    check_resume_refuses_different_bundles(out, shared, tmp_path)
    resumed = Cluster(tmp_path / "resumed")
    try:
        for rank in (0, 1):
            resumed.start_cli(rank, shared / "data.h5", "--out", out, "--config", shared / "train.yaml",
                              "--resume", "--epochs", "3", "--quiet")
        assert [resumed.wait(rank)[0] for rank in (0, 1)] == [0, 0], resumed.output(0)[-2000:]
    finally:
        resumed.stop_all()
    history = load_bundle(out).history
    assert history.epochs == 3 and history.loss[0] == bundle.history.loss[0]


def check_resume_refuses_different_bundles(out: Path, shared: Path, tmp_path: Path) -> None:
    """Workers that would resume from different bundles (as without a shared filesystem) stop
    before the first step with exit code 2, naming the worker that differs; ``out`` is untouched."""
    other = tmp_path / "other"
    bundle = load_bundle(out)
    weight = bundle.model.network.trainable_variables[0]
    weight.assign(weight.numpy() * 1.01)
    save_bundle(other, bundle.model, train_config=bundle.train_config, history=bundle.history,
                data_info=bundle.data_info, optimizer_state=bundle.optimizer_state())
    before = snapshot(out)
    mismatched = Cluster(tmp_path / "mismatched")
    try:
        for rank, folder in ((0, out), (1, other)):
            mismatched.start_cli(rank, shared / "data.h5", "--out", folder, "--config", shared / "train.yaml",
                                 "--resume", "--epochs", "3", "--quiet")
        codes = [mismatched.wait(rank)[0] for rank in (0, 1)]
    finally:
        mismatched.stop_all()
    line = one_error_line(mismatched.output(0))
    print(line)
    assert codes == [2, 2] and line.startswith("error: cluster: the workers hold different bundle to resume"), line
    assert line.endswith("worker 0 differs from worker(s) 1")
    assert snapshot(out) == before


def test_a_worker_that_never_joins_stops_the_other(cluster, shared, tmp_path):
    """Worker 1 never starts: worker 0 gives up after the start-up timeout, naming it."""
    cluster.start_cli(0, shared / "data.h5", "--out", tmp_path / "model", "--config", shared / "train.yaml",
                      "--quiet", "--set", "cluster.startup_timeout_s=15")
    t0 = time.time()
    code, stopped = cluster.wait(0, timeout=300)
    print(f"\nlone worker exited {code} after {stopped - t0:.1f} s")
    assert code == 1
    line = one_error_line(cluster.output(0))
    print(line)
    assert line.startswith(f"error: cluster: worker 1 (127.0.0.1:{cluster.ports[1]}) did not join within"), line
    assert not (tmp_path / "model").exists()
