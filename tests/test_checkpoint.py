"""All-or-nothing checkpoints (issue 13, item 1): a writer killed between any two file operations
of ``save_bundle`` leaves the previous complete bundle or the new complete bundle, never a
mixture, and ``load_bundle``, ``ptycho infer`` and ``ptycho train --resume`` all read it.

The kill is simulated in-process after every rename, replace and removal the save performs (each
staged file is finished by a replace, so this is also after every file write); from the kill on,
no further file operation runs, not even a cleanup handler, as with SIGKILL. One test kills a real
subprocess with SIGKILL in the middle of installing a checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ptycho.config.train import ModelConfig, TrainConfig
from ptycho.io.transaction import PENDING, STAGING_PREFIX
from ptycho.models.bundle import History, load_bundle, save_bundle
from ptycho.models.probe import ProbeVariables
from ptycho.workflows.train import train

N = 32
TINY = ("--batch-size", "8", "--n-filters-scale", "1", "--no-jit")
NEW_SCALE = 1.25
NEW_LEARNING_RATE = 2e-3
FILE_OPERATIONS = (("os", "replace"), ("os", "rename"), ("os", "unlink"), ("os", "remove"), ("os", "rmdir"),
                   ("shutil", "rmtree"))


class SimulatedKill(BaseException):
    """Raised at the kill point and by every file operation after it."""



@pytest.fixture(scope="module")
def old_bundle(small_scan, tmp_path_factory) -> Path:
    """A real one-epoch bundle (the checkpoint a kill must not lose)."""
    out = tmp_path_factory.mktemp("old") / "model"
    config = TrainConfig(model=ModelConfig(n_filters_scale=1), epochs=1, batch_size=8, jit=False)
    train(config, small_scan, out)
    return out


def new_checkpoint(old: Path) -> dict:
    """The arguments of a second checkpoint in which every file differs from the first."""
    bundle = load_bundle(old)
    model = bundle.model
    for variable in model.network.weights:
        variable.assign(variable.numpy() + 0.01)
    model.probe_variables = ProbeVariables(model.probe.numpy() * 1.01, trainable=False)
    model.scale.assign(NEW_SCALE)
    history = History(loss=[*bundle.history.loss, 0.5], val_loss=[*bundle.history.val_loss, 0.5],
                      learning_rate=[*bundle.history.learning_rate, NEW_LEARNING_RATE],
                      seconds=[*bundle.history.seconds, 1.0])
    optimizer = [v + 1 for v in bundle.optimizer_state()]
    train_config = bundle.train_config.model_copy(update={"learning_rate": NEW_LEARNING_RATE, "epochs": 2})
    return {"model": model, "train_config": train_config, "history": history, "data_info": bundle.data_info,
            "optimizer_state": optimizer, "extra_files": {"config.yaml": "train: {epochs: 2}\n"}}


def version_of(bundle, old, new) -> str:
    """``"old"`` or ``"new"``, asserting that every part of the loaded bundle agrees."""
    parts = {
        "weights": bundle.model.network.weights[0].numpy(),
        "probe": bundle.model.probe.numpy(),
        "scale": float(bundle.model.scale.numpy()),
        "epochs": bundle.history.epochs,
        "learning_rate": bundle.train_config.learning_rate,
        "optimizer": bundle.optimizer_state()[-1],
    }
    verdict = {}
    for name, value in parts.items():
        matches = [label for label, ref in (("old", old), ("new", new)) if np.array_equal(value, ref[name])]
        assert len(matches) == 1, f"{name} is neither the old nor the new checkpoint's"
        verdict[name] = matches[0]
    assert len(set(verdict.values())) == 1, f"a mixture of two checkpoints: {verdict}"
    return verdict["weights"]


def reference(bundle) -> dict:
    return {"weights": bundle.model.network.weights[0].numpy(), "probe": bundle.model.probe.numpy(),
            "scale": float(bundle.model.scale.numpy()), "epochs": bundle.history.epochs,
            "learning_rate": bundle.train_config.learning_rate, "optimizer": bundle.optimizer_state()[-1]}


def save_killed_after(k: int, out: Path, checkpoint: dict, monkeypatch) -> bool:
    """Run ``save_bundle`` with a kill after its ``k``-th file operation; True if it was killed."""
    import importlib

    count = [0]
    with monkeypatch.context() as patch:
        for module_name, name in FILE_OPERATIONS:
            module = importlib.import_module(module_name)
            real = getattr(module, name)

            def operation(*args, _real=real, **kwargs):
                if count[0] >= k:
                    raise SimulatedKill()  # dead: nothing runs after the kill
                result = _real(*args, **kwargs)
                count[0] += 1
                if count[0] == k:
                    raise SimulatedKill()
                return result

            patch.setattr(module, name, operation)
        try:
            save_bundle(out, **checkpoint)
        except SimulatedKill:
            return True
    return False


def test_a_kill_after_any_file_operation_leaves_the_old_or_the_new_bundle(old_bundle, small_scan, tmp_path,
                                                                         monkeypatch, ptycho):
    old = reference(load_bundle(old_bundle))
    source = tmp_path / "source"
    shutil.copytree(old_bundle, source)
    checkpoint = new_checkpoint(source)
    shutil.copytree(old_bundle, tmp_path / "complete")
    save_bundle(tmp_path / "complete", **checkpoint)
    new = reference(load_bundle(tmp_path / "complete"))

    outcomes, mid_install = [], None
    for k in range(1, 200):
        work = tmp_path / f"killed-{k}"
        shutil.copytree(old_bundle, work)
        killed = save_killed_after(k, work, checkpoint, monkeypatch)
        outcomes.append(version_of(load_bundle(work), old, new))
        pending = work / PENDING / "manifest.json"
        if mid_install is None and pending.is_file() and not (work / PENDING / "config.json").exists():
            mid_install = work  # some files moved into place, others not yet: the hardest state
        if not killed:
            break
    assert not killed, "the save never completed"
    print(f"{len(outcomes)} kill points: {outcomes.count('old')} old, {outcomes.count('new')} new")
    assert len(outcomes) >= 15  # every staged file, the commit and every install step
    assert outcomes[0] == "old" and outcomes[-1] == "new"
    assert outcomes == sorted(outcomes, key=("old", "new").index)  # never back to the old one

    # the mid-install state is read by the commands too, and a resumed run completes it
    assert mid_install is not None
    result = ptycho("infer", mid_install, small_scan, "--out", tmp_path / "patches.h5")
    assert result.exit_code == 0, result.output
    result = ptycho("train", small_scan, "--out", mid_install, "--resume", "--epochs", "3", *TINY)
    assert result.exit_code == 0, result.output
    resumed = load_bundle(mid_install)
    assert resumed.history.epochs == 3 and resumed.history.loss[:2] == new_history_losses(checkpoint)
    assert not (mid_install / PENDING).exists()
    manifest = json.loads((mid_install / "manifest.json").read_text())
    assert manifest["epochs"] == 3


def new_history_losses(checkpoint: dict) -> list[float]:
    return list(checkpoint["history"].loss)


KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from test_checkpoint import new_checkpoint
    from ptycho.models.bundle import save_bundle

    out, after = Path(sys.argv[1]), int(sys.argv[2])
    checkpoint = new_checkpoint(out)
    real_replace, real_rename, state = os.replace, os.rename, {"committed": False, "moved": 0}

    def rename(src, dst):
        real_rename(src, dst)
        state["committed"] = True

    def replace(src, dst):
        real_replace(src, dst)
        if state["committed"]:
            state["moved"] += 1
            if state["moved"] == after:
                print("installing", flush=True)
                time.sleep(600)

    os.rename, os.replace = rename, replace
    save_bundle(out, **checkpoint)
    """
)


def test_sigkill_in_the_middle_of_a_checkpoint_install(old_bundle, small_scan, tmp_path, ptycho):
    """A real process killed with SIGKILL after moving 3 files of a new checkpoint into place:
    the bundle loads as the new checkpoint, and the next writer finishes the install and removes
    the staging folder a writer killed earlier left behind."""
    work = tmp_path / "model"
    shutil.copytree(old_bundle, work)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(work), "3", str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "installing", proc.stderr.read()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (work / PENDING / "manifest.json").is_file()  # really killed mid-install
    stale_staging = work / f"{STAGING_PREFIX}{proc.pid}-0123abcd"
    stale_staging.mkdir()
    (stale_staging / "model.weights.h5").write_bytes(b"partial")
    bundle = load_bundle(work)
    assert bundle.history.epochs == 2 and float(bundle.model.scale.numpy()) == NEW_SCALE
    result = ptycho("train", small_scan, "--out", work, "--resume", "--epochs", "3", *TINY)
    assert result.exit_code == 0, result.output
    assert load_bundle(work).history.epochs == 3
    leftovers = [p.name for p in work.iterdir() if p.name.startswith(".")]
    assert leftovers == []
