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
from types import SimpleNamespace

import pytest
import typer

from ptycho.io.atomic import write_text_atomic
from ptycho_cli.errors import ExitCode, Terminated, guard, sigterm_received, terminate_as_interrupt

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


IMPORT_FRAME = SimpleNamespace(f_code=SimpleNamespace(co_filename="<frozen importlib._bootstrap>"))
"""What the handler sees when SIGTERM lands in an import that C code started (TensorFlow's)."""


def test_a_sigterm_inside_an_import_is_delivered_again_outside_it():
    with terminate_as_interrupt():
        handler = signal.getsignal(signal.SIGTERM)
        handler(signal.SIGTERM, IMPORT_FRAME)  # returns: raising here would come back mangled
        assert handler.fired and sigterm_received()
        start = time.monotonic()
        with pytest.raises(Terminated):
            while time.monotonic() - start < 10:
                time.sleep(0.01)
        assert time.monotonic() - start < 5
    assert not sigterm_received()  # the previous handler is back


def test_an_error_after_sigterm_exits_as_terminated(capsys):
    """A library that turns the termination into an error of its own (TensorFlow: SystemError,
    then AttributeError) still gives exit code 143 and the termination's message."""
    with terminate_as_interrupt():
        signal.getsignal(signal.SIGTERM).fired = True
        with pytest.raises(typer.Exit) as exit_info, guard():
            raise AttributeError("'dict' object has no attribute '_type_spec'")
    assert exit_info.value.exit_code == ExitCode.TERMINATED == 143
    assert capsys.readouterr().err == "error: terminated (SIGTERM); partial outputs were removed\n"


def test_an_error_without_sigterm_stays_internal(capsys):
    with terminate_as_interrupt(), pytest.raises(typer.Exit) as exit_info, guard():
        raise AttributeError("no such thing")
    assert exit_info.value.exit_code == ExitCode.INTERNAL
    assert "internal error: AttributeError: no such thing" in capsys.readouterr().err
