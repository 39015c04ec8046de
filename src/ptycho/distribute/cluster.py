"""Who is who in a multi-worker training, without TensorFlow: the cluster of ``TF_CONFIG``, the
chief, each worker's share of a batch, and which worker a TensorFlow error is about.

Workers are numbered as ``tf.distribute.MultiWorkerMirroredStrategy`` numbers them (its "id in
cluster"): the ``chief`` task, when the cluster has one, is worker 0 and ``worker`` task *i* is
worker *i* + 1; without a chief, ``worker`` task *i* is worker *i*. Worker 0 is the chief: it alone
writes the bundle, the figures and the progress.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ptycho.config.train import ClusterConfig
from ptycho.errors import ConfigError, field

JOBS = ("chief", "worker")
"""The task types a synchronous multi-worker training has, in rank order (no ``ps``, no ``evaluator``)."""

_TASK = r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)"
_BLAME_PATTERNS = (  # the task an error is about, most specific wording first
    re.compile(r"timed out task names:\s*" + _TASK),
    re.compile(r"stopped sending heartbeats\):\s*" + _TASK),
    re.compile(r"remote target " + _TASK),
)


@dataclass(frozen=True)
class ClusterInfo:
    """The workers of one training and which one this process is.

    Attributes
    ----------
    tasks : ``(job, index)`` of every worker, by rank
    addresses : ``host:port`` of every worker, by rank
    rank : this process's worker number (0 is the chief)
    """

    tasks: tuple[tuple[str, int], ...]
    addresses: tuple[str, ...]
    rank: int

    @classmethod
    def single(cls) -> "ClusterInfo":
        """One process, no peers (the ``default`` and ``mirrored`` strategies)."""
        return cls((("worker", 0),), ("local",), 0)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Sequence[str]], task_type: str | None, task_index: int | None) -> "ClusterInfo":
        """The cluster of a TensorFlow cluster spec ``{job: [host:port, ...]}`` seen from task
        ``(task_type, task_index)``.

        Raises
        ------
        ConfigError
            A job other than ``chief``/``worker``, more than one chief, or a task not in the spec.
        """
        unknown = sorted(set(spec) - set(JOBS))
        if unknown:
            raise ConfigError(f"train.cluster: job {unknown[0]!r} is not supported; a synchronous training has "
                              f"only 'worker' tasks (and at most one 'chief')")
        if len(spec.get("chief", ())) > 1:
            raise ConfigError("train.cluster: the cluster has more than one 'chief' task; use at most one")
        tasks = tuple((job, i) for job in JOBS for i in range(len(spec.get(job, ()))))
        if (task_type, task_index) not in tasks:
            raise ConfigError(f"train.cluster: this process is task {task_type!r} {task_index!r}, which the cluster "
                              f"({', '.join(f'{j} {i}' for j, i in tasks) or 'empty'}) does not have")
        addresses = tuple(str(a) for job in JOBS for a in spec.get(job, ()))
        return cls(tasks, addresses, tasks.index((task_type, task_index)))

    @property
    def size(self) -> int:
        return len(self.tasks)

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def describe(self, rank: int) -> str:
        """``worker 1 (host:port)``, or ``worker 0 (the chief, host:port)``."""
        chief = "the chief, " if rank == 0 else ""
        return f"worker {rank} ({chief}{self.addresses[rank]})"

    def share(self, rows: np.ndarray) -> np.ndarray:
        """This worker's rows of a global batch (:func:`shares`); ``rows`` itself on one worker."""
        return rows if self.size == 1 else rows[shares(len(rows), self.size)[self.rank]]

    def blamed_rank(self, message: str) -> int | None:
        """The worker a TensorFlow error message is about (a timed-out, silent or unreachable
        peer), or None if it names no other worker of this cluster."""
        for pattern in _BLAME_PATTERNS:
            match = pattern.search(message)
            if match and (match[1], int(match[2])) in self.tasks:
                return self.tasks.index((match[1], int(match[2])))
        for job, index in re.findall(_TASK, message):
            if (job, int(index)) in self.tasks and self.tasks.index((job, int(index))) != self.rank:
                return self.tasks.index((job, int(index)))
        return None


def shares(n_rows: int, parts: int) -> list[slice]:
    """Split ``n_rows`` consecutive rows into ``parts`` contiguous slices whose lengths differ by at
    most one (the longer ones first), covering every row exactly once."""
    bounds = np.cumsum([0] + [n_rows // parts + (1 if p < n_rows % parts else 0) for p in range(parts)])
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


_CONNECTION_LOST = ("connection reset", "socket closed", "connection refused", "failed to connect", "broken pipe")


def describe_failure(kind: str, message: str, cluster: ClusterInfo, config: ClusterConfig) -> str:
    """One phrase for a TensorFlow error ``kind`` (its class name) about a peer: which worker, and
    what happened to it (``worker 1 (host:port) closed its connection …``)."""
    rank = cluster.blamed_rank(message)
    who = cluster.describe(rank) if rank is not None else "a worker"
    text = message.lower()
    if "barrier timed out" in text or "tasks to register" in text:
        what = f"did not join within {field('train.cluster.startup_timeout_s')}={config.startup_timeout_s:g} s"
    elif "heartbeat" in text:
        what = (f"went silent (no heartbeat within {field('train.cluster.heartbeat_timeout_s')}="
                f"{config.heartbeat_timeout_s:g} s: hung, stopped or cut off)")
    elif any(s in text for s in _CONNECTION_LOST):
        what = "closed its connection (its process ended or its host went down)"
    elif kind == "DeadlineExceededError" and config.collective_timeout_s is not None:
        what = (f"did not take part in a gradient exchange within {field('train.cluster.collective_timeout_s')}="
                f"{config.collective_timeout_s:g} s")
    else:
        first = next((line.strip() for line in message.splitlines() if line.strip()), kind)
        what = f"failed ({kind}: {first[:160]})"
    return f"{who} {what}"


def tf_config_cluster(text: str | None) -> ClusterInfo:
    """The cluster of a ``TF_CONFIG`` value: ``{"cluster": {job: [host:port, ...]}, "task":
    {"type": job, "index": i}}``.

    Raises
    ------
    ConfigError
        Unset, not JSON, or not a cluster this training can run on.
    """
    if not text:
        raise ConfigError(f"{field('train.strategy')} is multiworker but the TF_CONFIG environment variable is not "
                          f"set; set it on every worker (cluster and task), or take the cluster from SLURM "
                          f"({field('train.cluster.resolver')} slurm)")
    try:
        data = json.loads(text)
        cluster, task = data["cluster"], data.get("task", {})
        return ClusterInfo.from_spec(cluster, task.get("type"), task.get("index"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"TF_CONFIG is not a valid cluster description ({type(exc).__name__}: {exc}); expected "
                          '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}') from None


def is_chief_process(resolver: str, environ: Mapping[str, str]) -> bool:
    """Whether this process will be the chief of a multi-worker training (without TensorFlow, so
    the command line can decide early whether to show progress). A process whose cluster cannot
    be read counts as the chief: it will report the error."""
    if resolver == "slurm":
        return environ.get("SLURM_PROCID", "0").strip() in ("", "0")
    try:
        return tf_config_cluster(environ.get("TF_CONFIG")).is_chief
    except ConfigError:
        return True
