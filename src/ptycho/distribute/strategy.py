"""The ``tf.distribute`` strategy of a training, and the few cross-worker exchanges it needs.

``MultiWorkerMirroredStrategy`` configures the collective ops TensorFlow's runtime is built with,
so it must be created before anything else in the process runs a TensorFlow op;
:func:`start_distribution` is therefore the first TensorFlow call of a training. The cluster comes
from TensorFlow's own resolvers (``TFConfigClusterResolver``, ``SlurmClusterResolver``); the
strategy broadcasts the chief's initial weights and all-reduces the gradients.

A lost worker is noticed by TensorFlow's coordination service: a peer whose process ends breaks
its connections (the others fail at once), one that goes silent misses its heartbeats
(``train.cluster.heartbeat_timeout_s``), one that never joins misses the start-up barrier
(``train.cluster.startup_timeout_s``). :func:`lost_worker` turns the resulting TensorFlow error
into one line naming the worker.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ptycho._tf import quiet_start
from ptycho._tf import tf as _tf
from ptycho.config.train import ClusterConfig
from ptycho.distribute.cluster import ClusterInfo, describe_failure, tf_config_cluster
from ptycho.errors import ClusterError, ConfigError, field


@dataclass(frozen=True)
class Distribution:
    """A strategy and the cluster it spans (one worker for ``default`` and ``mirrored``)."""

    strategy: Any
    cluster: ClusterInfo

    @property
    def is_chief(self) -> bool:
        return self.cluster.is_chief

    def gather(self, value: float) -> np.ndarray:
        """Every worker's ``value`` (exact for integers below 2⁵³), by rank, on every worker."""
        one_hot = np.zeros(self.cluster.size)
        one_hot[self.cluster.rank] = value
        return sum_over_workers(self.strategy, one_hot)

    def check_global_batch(self, batch_size: int) -> int:
        """``batch_size`` if every replica gets at least one group of it.

        Raises
        ------
        ConfigError
            Fewer groups per step than replicas.
        """
        replicas = self.strategy.num_replicas_in_sync
        if batch_size < replicas:
            raise ConfigError(f"{field('train.batch_size')} {batch_size}: a step of {batch_size} groups cannot feed "
                              f"{replicas} replicas; the batch is global (over every worker), so use at least {replicas}")
        return batch_size

    def require_same(self, what: str, value: int) -> None:
        """Check that every worker holds the same ``value`` (an integer below 2⁵³).

        Raises
        ------
        ConfigError
            The workers differ; the message lists the worker numbers on each side.
        """
        values = self.gather(value)
        if np.all(values == values[0]):
            return
        odd = [rank for rank, v in enumerate(values) if v != values[0]]
        raise ConfigError(f"cluster: the workers hold different {what}: worker 0 differs from worker(s) "
                          f"{', '.join(map(str, odd))}")

    def barrier(self) -> None:
        """Return once every worker has reached this point."""
        sum_over_workers(self.strategy, np.zeros(1))


def start_distribution(name: str, cluster: ClusterConfig) -> Distribution:
    """The strategy ``name`` (``default``: one device, ``mirrored``: all local devices,
    ``multiworker``: the cluster of ``cluster.resolver``).

    Raises
    ------
    ConfigError
        No readable cluster, or TensorFlow already ran in this process (multiworker).
    ClusterError
        A worker did not join within ``cluster.startup_timeout_s``.
    """
    if name == "multiworker":
        return _multi_worker(cluster)
    tf = _tf()
    strategy = tf.distribute.MirroredStrategy() if name == "mirrored" else tf.distribute.get_strategy()
    return Distribution(strategy, ClusterInfo.single())


def _multi_worker(config: ClusterConfig) -> Distribution:
    if os.environ.get("PTYCHO_TF_LOGS", "") != "1":
        # the runtime logs several lines per lost peer; the error raised below says it in one
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = _tf(start=False)
    resolver = cluster_resolver(config)
    cluster = ClusterInfo.from_spec(resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id)
    already_ran = ConfigError(f"{field('train.strategy')} multiworker must be the first use of TensorFlow in its "
                              f"process, but TensorFlow already ran here; start each worker's training in a fresh process")
    if _runtime_started():
        raise already_ran
    if cluster.size > 1:
        _bound_coordination(cluster, config)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=config.collective_timeout_s)
    try:
        with quiet_start(replay_on_error=False):
            strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver,
                                                                 communication_options=options)
    except RuntimeError as exc:
        if "program startup" not in str(exc):
            raise
        raise already_ran from None
    except tf.errors.OpError as exc:
        raise ClusterError(f"cluster: {describe_failure(type(exc).__name__, str(exc), cluster, config)} while the "
                           f"workers were starting; no training was done; start every worker again") from None
    return Distribution(strategy, cluster)


def cluster_resolver(config: ClusterConfig) -> Any:
    """TensorFlow's resolver of the cluster ``config.resolver`` names (TensorFlow imported, not started).

    Raises
    ------
    ConfigError
        ``TF_CONFIG`` unset or malformed; not inside a SLURM job step.
    """
    if config.resolver == "tf_config":
        tf_config_cluster(os.environ.get("TF_CONFIG"))  # a clear error for a missing or malformed TF_CONFIG
    resolvers = _tf(start=False).distribute.cluster_resolver
    if config.resolver == "tf_config":
        return resolvers.TFConfigClusterResolver()
    try:
        try:
            return resolvers.SlurmClusterResolver(port_base=config.slurm_port_base)
        except (RuntimeError, ValueError, OSError):
            # no GPUs: TensorFlow cannot count none (nvidia-smi missing) nor share none (a zero
            # GPU count per task divides a range by zero, tensorflow#56894); declare one notional
            # GPU per task and leave CUDA_VISIBLE_DEVICES alone
            tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS", "1"))
            return resolvers.SlurmClusterResolver(port_base=config.slurm_port_base, gpus_per_node=tasks,
                                                  gpus_per_task=1, auto_set_gpu=False)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"{field('train.cluster.resolver')} slurm: {exc} (run the training as a SLURM job step, "
                          f"e.g. with srun)") from None


def _runtime_started() -> bool:
    """Whether TensorFlow's runtime already started in this process (then collective ops can no
    longer be configured). TensorFlow tells only through its eager context; if that changes, the
    strategy's own RuntimeError still says so."""
    try:
        from tensorflow.python.eager import context

        return context.context()._context_handle is not None  # noqa: SLF001 - no public equivalent
    except (ImportError, AttributeError):
        return False


def _bound_coordination(cluster: ClusterInfo, config: ClusterConfig) -> None:
    """Give TensorFlow's coordination service a start-up limit and our heartbeat timeout.

    ``MultiWorkerMirroredStrategy`` configures the service itself, with no start-up limit (a worker
    that never starts keeps the others waiting for ever), unless one is configured already.
    TensorFlow exposes these settings only on its eager context, so this sets the same service
    the strategy would (leader: the chief's task; jobs: the cluster's) with the two limits.
    """
    try:
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
        from tensorflow.python.eager import context
    except ImportError:
        warnings.warn("this TensorFlow has no coordination-service settings: train.cluster.startup_timeout_s and "
                      "heartbeat_timeout_s are not applied", RuntimeWarning, stacklevel=3)
        return
    jobs = {}
    for job, _ in cluster.tasks:
        jobs[job] = jobs.get(job, 0) + 1
    leader_job = cluster.tasks[0][0]
    ctx = context.context()
    ctx.configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{leader_job}/replica:0/task:0",
        cluster_register_timeout_in_ms=int(config.startup_timeout_s * 1000),
        heartbeat_timeout_in_ms=int(config.heartbeat_timeout_s * 1000),
        shutdown_barrier_timeout_in_ms=int(config.startup_timeout_s * 1000),
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=j, num_tasks=n) for j, n in jobs.items()],
    )
    ctx.coordination_service.cluster_register_with_barrier = True  # the register limit holds only with it


def lost_worker(exc: BaseException, cluster: ClusterInfo, config: ClusterConfig) -> str | None:
    """``worker 1 (host:port) went silent …`` when ``exc`` is TensorFlow reporting a lost or
    unreachable peer of a multi-worker cluster; None for any other error."""
    if cluster.size < 2:
        return None
    tf = _tf(start=False)
    lost = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
            tf.errors.CancelledError)
    if not isinstance(exc, lost):
        return None
    return describe_failure(type(exc).__name__, str(exc), cluster, config)


@contextlib.contextmanager
def stop_on_lost_worker(distribution: Distribution, config: ClusterConfig, outcome: Callable[[], str]) -> Iterator[None]:
    """Turn TensorFlow's report of a lost peer into a one-line :class:`ClusterError` naming the
    worker and ending with ``outcome()`` (what was kept); other errors pass unchanged."""
    try:
        yield
    except Exception as exc:
        failure = lost_worker(exc, distribution.cluster, config)
        if failure is None:
            raise
        raise ClusterError(f"cluster: {failure}; training stopped; {outcome()}") from None


def local_replicas(strategy: Any) -> int:
    """The replicas of this worker (all of them unless the strategy spans several workers)."""
    try:
        return len(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has one device and does not list it
        return 1


def sum_over_workers(strategy: Any, values: np.ndarray) -> np.ndarray:
    """Sum a float64 array, given on each worker, over the workers; every worker gets the total
    (one collective; the identity on one worker)."""
    local = local_replicas(strategy)
    if strategy.num_replicas_in_sync == local:
        return np.asarray(values, np.float64)
    tf = _tf()

    def own_or_zero(ctx: Any) -> Any:  # one replica per worker contributes
        keep = ctx.replica_id_in_sync_group % local == 0
        return tf.constant(values if keep else np.zeros_like(values), tf.float64)

    per_replica = strategy.experimental_distribute_values_from_function(own_or_zero)
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()
