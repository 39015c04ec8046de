"""The pieces of multi-worker training that need no second process: the cluster of ``TF_CONFIG``
and of SLURM, chief detection, each worker's share of a batch, and which worker a TensorFlow error
blames. Real two-process trainings are in ``test_multiworker.py`` (slow)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from ptycho.config.train import ClusterConfig
from ptycho.distribute.cluster import ClusterInfo, describe_failure, is_chief_process, shares, tf_config_cluster
from ptycho.errors import ConfigError

WORKERS = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]

# What TensorFlow 2.21 reported to a surviving worker 0 (or 1) of two on 127.0.0.1, recorded from
# real runs (lines as printed, trimmed to the part that names the task):
KILLED_PEER = (  # worker 1 got SIGKILL during a step
    "Collective ops is aborted by: recvmsg:Connection reset by peer\n"
    "Additional GRPC error information from remote target /job:worker/replica:0/task:1 while calling "
    "/tensorflow.WorkerService/RecvBuf:\n"
    ':UNKNOWN:Error received from peer  {grpc_status:14, grpc_message:"recvmsg:Connection reset by peer"}\n'
    "The error could be from a previous operation. Restart your program to reset.")
KILLED_CHIEF = (  # worker 0 got SIGKILL; seen by worker 1
    "Collective ops is aborted by: recvmsg:Connection reset by peer\n"
    "Additional GRPC error information from remote target /job:worker/replica:0/task:0 while calling "
    "/tensorflow.WorkerService/CompleteInstance:\n")
FROZEN_PEER = (  # worker 1 got SIGSTOP
    "Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks are unhealthy "
    "(stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed. Check the task logs "
    "for an earlier error, or scheduler events (e.g. preemption, eviction) to debug further.")
NEVER_JOINED = (  # worker 1 never started; the first task named is worker 0 itself
    "Barrier timed out. Id: [Init]Wait_for_all_tasks_to_register::0. This usually happens because a task "
    "triggered the barrier too early or too slowly.\n# of tasks that reached the barrier: 1/2.\n"
    "The first task at the barrier: /job:worker/replica:0/task:0. Some timed out task names:\n"
    "/job:worker/replica:0/task:1\n")


def tf_config(cluster: dict, task_type: str = "worker", index: int = 0) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_tf_config_workers_are_ranked_by_index_and_worker_0_is_the_chief():
    info = tf_config_cluster(tf_config({"worker": WORKERS}, index=2))
    assert (info.rank, info.size, info.is_chief) == (2, 3, False)
    assert info.addresses == tuple(WORKERS)
    assert info.describe(2) == "worker 2 (127.0.0.1:7003)"
    assert info.describe(0) == "worker 0 (the chief, 127.0.0.1:7001)"
    assert tf_config_cluster(tf_config({"worker": WORKERS})).is_chief


def test_a_chief_task_comes_before_the_workers():
    """As MultiWorkerMirroredStrategy numbers them: chief 0, then worker i as i + 1."""
    cluster = {"chief": ["10.0.0.1:2222"], "worker": ["10.0.0.2:2222", "10.0.0.3:2222"]}
    assert tf_config_cluster(tf_config(cluster, "chief", 0)).rank == 0
    worker = tf_config_cluster(tf_config(cluster, "worker", 1))
    assert (worker.rank, worker.is_chief, worker.addresses[worker.rank]) == (2, False, "10.0.0.3:2222")


@pytest.mark.parametrize(("text", "expected"), [
    (None, "TF_CONFIG environment variable is not"),
    ("{not json", "TF_CONFIG is not a valid cluster description"),
    (json.dumps({"task": {"type": "worker", "index": 0}}), "TF_CONFIG is not a valid cluster description"),
    (tf_config({"worker": WORKERS, "ps": ["h:1"]}), "job 'ps' is not supported"),
    (tf_config({"chief": ["h:1", "h:2"], "worker": WORKERS}, "chief"), "more than one 'chief'"),
    (tf_config({"worker": WORKERS}, index=3), "task 'worker' 3, which the cluster"),
    (tf_config({"worker": WORKERS}, "evaluator"), "task 'evaluator' 0"),
])
def test_unusable_tf_config_is_a_config_error(text, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        tf_config_cluster(text)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


def test_chief_detection_without_tensorflow():
    env = {"TF_CONFIG": tf_config({"worker": WORKERS}, index=1)}
    assert not is_chief_process("tf_config", env)
    assert is_chief_process("tf_config", {"TF_CONFIG": tf_config({"worker": WORKERS}, index=0)})
    assert is_chief_process("tf_config", {})  # unreadable: it will report the error itself
    assert is_chief_process("slurm", {"SLURM_PROCID": "0"}) and not is_chief_process("slurm", {"SLURM_PROCID": "3"})


@pytest.mark.parametrize("parts", [1, 2, 3, 4, 7])
def test_shares_cover_every_row_once_and_differ_by_at_most_one(parts):
    for n in range(0, 23):
        slices = shares(n, parts)
        covered = np.concatenate([np.arange(n)[s] for s in slices])
        np.testing.assert_array_equal(covered, np.arange(n))
        lengths = [s.stop - s.start for s in slices]
        assert len(slices) == parts and max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)


def test_the_workers_shares_of_a_batch_partition_it():
    """Every group of a global batch goes to exactly one worker (no duplicated, no dropped groups)."""
    batch = np.random.default_rng(0).permutation(100)[:11]
    owned = [tf_config_cluster(tf_config({"worker": WORKERS}, index=r)).share(batch) for r in range(3)]
    assert [len(o) for o in owned] == [4, 4, 3]
    np.testing.assert_array_equal(np.concatenate(owned), batch)


@pytest.mark.parametrize(("message", "rank", "own", "symptom"), [
    (KILLED_PEER, 1, 0, "closed its connection"),
    (KILLED_CHIEF, 0, 1, "closed its connection"),
    (FROZEN_PEER, 1, 0, "went silent (no heartbeat within `train.cluster.heartbeat_timeout_s`=10 s"),
    (NEVER_JOINED, 1, 0, "did not join within `train.cluster.startup_timeout_s`=300 s"),
])
def test_a_tensorflow_error_names_the_lost_worker(message, rank, own, symptom):
    info = tf_config_cluster(tf_config({"worker": WORKERS[:2]}, index=own))
    assert info.blamed_rank(message) == rank
    text = describe_failure("UnavailableError", message, info, ClusterConfig())
    assert text.startswith(info.describe(rank)) and symptom in text and "\n" not in text


def test_an_error_naming_no_peer_blames_nobody():
    info = tf_config_cluster(tf_config({"worker": WORKERS[:2]}, index=0))
    message = "Collective ops is aborted by: something odd on /job:worker/replica:0/task:0\nmore"
    assert info.blamed_rank(message) is None
    text = describe_failure("AbortedError", message, info, ClusterConfig())
    assert text == "a worker failed (AbortedError: Collective ops is aborted by: something odd on " \
                   "/job:worker/replica:0/task:0)"


SLURM_STEP = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "3", "SLURM_STEP_NODELIST": "cn[07-08]",
              "SLURM_STEP_TASKS_PER_NODE": "2,1"}


def test_slurm_cluster_through_tensorflows_resolver(monkeypatch):
    """SlurmClusterResolver packs the step's tasks onto its nodes (ports from the base, one per task
    on a node); on a node without GPUs (no nvidia-smi here) it still resolves and leaves
    CUDA_VISIBLE_DEVICES alone."""
    from ptycho.distribute.strategy import cluster_resolver

    for key, value in SLURM_STEP.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    resolver = cluster_resolver(ClusterConfig(resolver="slurm", slurm_port_base=9100))
    info = ClusterInfo.from_spec(resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id)
    assert info.addresses == ("cn07:9100", "cn07:9101", "cn08:9100") and info.rank == 1
    assert "CUDA_VISIBLE_DEVICES" not in __import__("os").environ


def test_slurm_outside_a_job_step_is_a_config_error(monkeypatch):
    from ptycho.distribute.strategy import cluster_resolver

    for key in SLURM_STEP:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="`train.cluster.resolver` slurm: SLURM_PROCID not found") as err:
        cluster_resolver(ClusterConfig(resolver="slurm"))
    assert "srun" in str(err.value)


def test_a_global_batch_smaller_than_the_replicas_is_refused():
    from ptycho.distribute.strategy import Distribution

    distribution = Distribution(SimpleNamespace(num_replicas_in_sync=4), ClusterInfo.single())
    assert distribution.check_global_batch(4) == 4
    with pytest.raises(ConfigError, match="`train.batch_size` 3: a step of 3 groups cannot feed 4 replicas"):
        distribution.check_global_batch(3)


def test_multiworker_in_a_process_where_tensorflow_already_ran(monkeypatch):
    """A library caller who used TensorFlow first gets a clear error, not TensorFlow's RuntimeError."""
    from ptycho._tf import tf
    from ptycho.distribute.strategy import start_distribution

    tf().constant(1.0)  # TensorFlow has run
    monkeypatch.setenv("TF_CONFIG", tf_config({"worker": WORKERS[:2]}))
    with pytest.raises(ConfigError, match="must be the first use of TensorFlow in its process"):
        start_distribution("multiworker", ClusterConfig())


def test_cli_multiworker_without_a_cluster_exits_2(invoke, monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = invoke("train", tmp_path / "data.h5", "--out", tmp_path / "m", "--strategy", "multiworker")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith(
        "error: --strategy is multiworker but the TF_CONFIG environment variable is not set")
    assert "take the cluster from SLURM (--cluster slurm)" in result.output
    assert not (tmp_path / "m").exists()
