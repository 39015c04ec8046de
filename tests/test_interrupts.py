"""Temporary files never outlive an interrupted run (issue 13, item 5): SIGTERM unwinds like Ctrl-C
(the temporary file is removed, exit code 143), and a temporary file left by ``kill -9`` is removed
by the next run writing the same output, while those of running writers are kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ptycho.io.atomic import write_text_atomic

TEMP_WAIT_S = 120
"""Upper bound for the child to start writing (TensorFlow's import on a busy machine)."""

HOLD_TEMP = textwrap.dedent(
    """
    import sys, time
    from ptycho.io.atomic import atomic_output
    with atomic_output(sys.argv[1]) as tmp:
        tmp.write_bytes(b"half of it")
        print(tmp, flush=True)
        time.sleep(600)
    """
)


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def wait_for_temp(folder: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + TEMP_WAIT_S
    while not temporaries(folder):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the child never started writing"
        time.sleep(0.05)


def test_sigterm_during_simulate_removes_the_temporary_file(tmp_path):
    """A real ``ptycho simulate`` writing a large HDF5 file, sent SIGTERM mid-write."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    out = tmp_path / "big.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ptycho_cli.app", "simulate", "--N", "32", "--n-images", "400000",
         "--size", "96", "--no-preview", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for_temp(tmp_path, proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr[-2000:]
    assert "terminated" in stderr and "Traceback" not in stderr
    assert temporaries(tmp_path) == [] and not out.exists()


def test_the_next_write_removes_temporaries_of_killed_writers_only(tmp_path):
    target = tmp_path / "result.json"
    proc = subprocess.Popen([sys.executable, "-c", HOLD_TEMP, str(target)], stdout=subprocess.PIPE, text=True)
    left = Path(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert left.is_file()  # kill -9 runs no cleanup
    running = tmp_path / f".result.tmp-{os.getpid()}-0123abcd.json"  # a live writer's (ours)
    running.write_text("in progress")
    other = tmp_path / f".other.tmp-{proc.pid}-0123abcd.json"  # a dead writer of another output
    other.write_text("not ours to judge")

    write_text_atomic(target, "{}")
    assert target.read_text() == "{}"
    assert not left.exists()
    assert running.exists() and other.exists()
