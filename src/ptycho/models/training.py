"""The training loop: compiled steps, NaN guard, learning-rate plateau schedule, early stopping.

The step (network → physics → loss → gradients → Adam) runs as one ``tf.function`` (XLA-compiled
with ``jit``) under a ``tf.distribute`` strategy; Python only iterates over batches and checks one
finiteness flag per step. A non-finite loss or gradient is never applied: the epoch stops, the last
good weights and optimizer state are restored, the learning rate of the failed try is halved
(so repeated failures keep halving it), and training goes on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ptycho._tf import tf as _tf
from ptycho.config.train import TrainConfig
from ptycho.data.pipeline import Batch
from ptycho.distribute.cluster import shares
from ptycho.distribute.strategy import local_replicas, sum_over_workers
from ptycho.models.bundle import History
from ptycho.models.losses import per_group_loss
from ptycho.models.pinn import PINN

PLATEAU_MIN_DELTA = 1e-4  # relative improvement that counts as progress


class Diverged(Exception):
    """Training hit a non-finite loss more often than it may recover."""


@dataclass
class StepReport:
    epoch: int
    step: int
    steps: int
    loss: float


class Trainer:
    """Fits a :class:`PINN` with Adam under a distribution strategy.

    Parameters
    ----------
    model : PINN, created inside ``strategy.scope()``
    config : TrainConfig
    strategy : the ``tf.distribute`` strategy the model was created under
    mask : (N, N) bool, optional
        Valid detector pixels: the loss is their mean only (docs/measured-data.md#masks).
    global_batch : groups per step over all workers; needed with several workers, each of which
        passes only its own share of every batch (by default, the length of the batch given)

    The loss of a step is the mean over the global batch: each replica sums its groups' losses and
    divides by the global batch, and the optimizer sums the replicas' gradients, so the step is the
    one a single process would take on the whole batch, at the same learning rate.
    """

    def __init__(self, model: PINN, config: TrainConfig, strategy: Any, mask: np.ndarray | None = None, *,
                 global_batch: int | None = None):
        tf = _tf()
        import keras

        self.model, self.config, self.strategy = model, config, strategy
        self.network_vars = model.network_variables
        self.probe_vars = model.probe_trainable_variables
        self.local_replicas = local_replicas(strategy)
        if global_batch is None and strategy.num_replicas_in_sync > self.local_replicas:
            raise ValueError("Trainer: global_batch is required with several workers")
        self.global_batch = global_batch
        with strategy.scope():
            self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
            self.optimizer.build(self.network_vars)
            # the probe's own optimiser: its variables are the probe relative to its RMS value
            # (ptycho.models.probe), so this rate is a relative step, whatever the network's rate
            self.probe_optimizer = keras.optimizers.Adam(learning_rate=config.probe_learning_rate)
            if self.probe_vars:
                self.probe_optimizer.build(self.probe_vars)
        self.variables = self.network_vars + self.probe_vars
        norm, eps, kind = model.physics.counts_norm, config.loss_epsilon, config.loss

        def loss_and_grads(counts: Any, ox: Any, oy: Any, est: Any, global_batch: Any) -> tuple[Any, Any]:
            # this replica's share of the global-batch mean: the optimizer sums replica gradients
            with tf.GradientTape() as tape:
                lam = model.predict_counts(counts, ox, oy, est, training=True)
                per_group = per_group_loss(kind, lam, counts, norm=norm, epsilon=eps, mask=mask)
                loss = tf.reduce_sum(per_group) / global_batch
            return loss, tape.gradient(loss, self.variables)

        compiled = tf.function(loss_and_grads, jit_compile=config.jit, reduce_retracing=True)

        def replica_step(counts: Any, ox: Any, oy: Any, est: Any, global_batch: Any) -> tuple[Any, Any]:
            loss, grads = compiled(counts, ox, oy, est, global_batch)
            finite = tf.math.is_finite(loss)
            for g in grads:
                finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(g)))
            grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
            n = len(self.network_vars)
            self.optimizer.apply_gradients(zip(grads[:n], self.network_vars))
            if self.probe_vars:
                self.probe_optimizer.apply_gradients(zip(grads[n:], self.probe_vars))
            return loss, tf.cast(finite, tf.float32)

        @tf.function(reduce_retracing=True)
        def train_step(counts: Any, ox: Any, oy: Any, est: Any, global_batch: Any) -> tuple[Any, Any]:
            loss, ok = strategy.run(replica_step, args=(counts, ox, oy, est, global_batch))
            total = tf.distribute.ReduceOp.SUM
            return strategy.reduce(total, loss, axis=None), strategy.reduce(total, ok, axis=None)

        @tf.function(reduce_retracing=True)
        def eval_step(counts: Any, ox: Any, oy: Any, est: Any) -> Any:
            lam = model.predict_counts(counts, ox, oy, est, training=False)
            return tf.reduce_sum(per_group_loss(kind, lam, counts, norm=norm, epsilon=eps, mask=mask))

        self._train_step, self._eval_step = train_step, eval_step

    # -- state -----------------------------------------------------------------------------
    def _optimizer_variables(self) -> list[Any]:
        probe = list(self.probe_optimizer.variables) if self.probe_vars else []
        return list(self.optimizer.variables) + probe

    def _state_variables(self) -> list[Any]:
        return list(self.model.network.weights) + self.model.physics_variables + self._optimizer_variables()

    def snapshot(self) -> list[np.ndarray]:
        return [np.array(v.numpy()) for v in self._state_variables()]

    def restore(self, snapshot: list[np.ndarray]) -> None:
        for variable, value in zip(self._state_variables(), snapshot, strict=True):
            variable.assign(value)

    def optimizer_state(self) -> list[np.ndarray]:
        return [np.array(v.numpy()) for v in self._optimizer_variables()]

    def load_optimizer_state(self, values: list[np.ndarray]) -> None:
        for variable, value in zip(self._optimizer_variables(), values, strict=True):
            variable.assign(value)

    @property
    def learning_rate(self) -> float:
        return float(np.asarray(self.optimizer.learning_rate))

    def set_learning_rate(self, value: float) -> None:
        self.optimizer.learning_rate.assign(value)

    # -- loops -----------------------------------------------------------------------------
    def _to_device(self, batch: Batch) -> tuple[Any, ...]:
        tf = _tf()
        return tuple(tf.convert_to_tensor(a) for a in batch)  # type: ignore[return-value]

    def to_replicas(self, batch: Batch) -> tuple[Any, ...]:
        """Split this worker's batch along its first axis, one share per local replica (a plain
        tensor passed to ``strategy.run`` would reach every replica whole, duplicating the work):
        each array of ``batch`` becomes a distributed value whose local replica ``r`` holds the
        ``r``-th share. Replica ids are numbered worker by worker, so ``id % local_replicas`` is the
        local one."""
        tf = _tf()
        if self.strategy.num_replicas_in_sync == 1:
            return self._to_device(batch)
        local = self.local_replicas
        parts = shares(len(batch[0]), local)
        return tuple(  # type: ignore[return-value]
            self.strategy.experimental_distribute_values_from_function(
                lambda ctx, a=np.asarray(a): tf.convert_to_tensor(a[parts[ctx.replica_id_in_sync_group % local]]))
            for a in batch
        )

    def run_epoch(self, batches: Iterable[Batch], steps: int, epoch: int,
                  on_step: Callable[[StepReport], None] | None = None) -> float | None:
        """Train one epoch; returns the mean loss, or None if a non-finite step stopped it."""
        tf = _tf()
        total, count = 0.0, 0
        for step, batch in enumerate(batches):
            global_batch = tf.constant(float(self.global_batch or len(batch[0])), tf.float32)
            loss, ok = self._train_step(*self.to_replicas(batch), global_batch)
            if float(ok) < self.strategy.num_replicas_in_sync:  # some replica saw a non-finite value
                return None
            total += float(loss)
            count += 1
            if on_step:
                on_step(StepReport(epoch, step + 1, steps, total / count))
        return total / max(count, 1)

    def evaluate(self, batches: Iterable[Batch]) -> float:
        """Mean loss per group over ``batches``; with several workers, each passes its own groups
        and every worker gets the mean over all of them."""
        total, n = 0.0, 0
        for batch in batches:
            total += float(self._eval_step(*self._to_device(batch)))
            n += len(batch[0])
        total, n = sum_over_workers(self.strategy, np.array([total, n], np.float64))
        return float(total / max(n, 1))

    def fit(
        self,
        history: History,
        epoch_batches: Callable[[int], tuple[Iterable[Batch], int]],
        val_batches: Callable[[], Iterable[Batch]] | None,
        *,
        on_step: Callable[[StepReport], None] | None = None,
        on_epoch: Callable[[int, History], None] | None = None,
    ) -> History:
        """Train from ``history.epochs`` up to ``config.epochs``.

        ``epoch_batches(epoch)`` gives that epoch's batches and their count. ``on_epoch`` runs
        after every good epoch (the workflow checkpoints there).

        Raises
        ------
        Diverged
            After more than ``max_nan_recoveries`` recoveries; the weights are the last good ones.
        """
        cfg = self.config
        good = self.snapshot()
        best, wait_lr, wait_stop = _best_so_far(history), 0, 0
        epoch = history.epochs
        while epoch < cfg.epochs:
            t0 = time.perf_counter()
            batches, steps = epoch_batches(epoch)
            loss = self.run_epoch(batches, steps, epoch, on_step)
            if loss is None or not math.isfinite(loss):
                tried = self.learning_rate
                history.nan_recoveries += 1
                history.recoveries.append({"epoch": epoch + 1, "learning_rate": tried})
                self.restore(good)  # the optimizer's state includes its rate: halve the one that failed
                self.set_learning_rate(tried * 0.5)
                if history.nan_recoveries > cfg.max_nan_recoveries:
                    raise Diverged(
                        f"non-finite loss in epoch {epoch + 1} after {history.nan_recoveries - 1} recoveries "
                        f"(the last try ran at learning rate {tried:.3g})"
                    )
                continue
            val = self.evaluate(val_batches()) if val_batches else float("nan")
            history.loss.append(loss)
            history.val_loss.append(val)
            history.learning_rate.append(self.learning_rate)
            history.seconds.append(time.perf_counter() - t0)
            good = self.snapshot()
            epoch += 1
            monitored = val if math.isfinite(val) else loss
            if monitored < best * (1 - PLATEAU_MIN_DELTA):
                best, wait_lr, wait_stop = monitored, 0, 0
            else:
                wait_lr, wait_stop = wait_lr + 1, wait_stop + 1
                if wait_lr >= cfg.reduce_lr_patience:
                    self.set_learning_rate(max(self.learning_rate * cfg.reduce_lr_factor, cfg.min_learning_rate))
                    wait_lr = 0
            if on_epoch:
                on_epoch(epoch, history)
            if cfg.early_stopping_patience is not None and wait_stop >= cfg.early_stopping_patience:
                history.stopped_early = True
                break
        return history


def _best_so_far(history: History) -> float:
    values = [v if math.isfinite(v) else l for l, v in zip(history.loss, history.val_loss)]
    return min(values) if values else math.inf
