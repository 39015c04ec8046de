"""Hostile and broken input as a table (issue 13): input, command, expected exit code, expected
message fragment, and that nothing under the input or output names was lost, changed or
partially written.

Each case runs the real command in-process on a fresh copy of the tiny inputs (``conftest.py``
here: N=32, built once per session without TensorFlow). Refusals happen before
any work, so almost no case imports TensorFlow or trains. After every case: each file that was
there is still there, byte for byte; a refused run (exit code ≠ 0) created no file at all; no
temporary file is left; the error is one line (``error: …``), no traceback, and bounded.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ptycho_cli import CommandSpec, ObjectSpec, ProbeSpec, ScanSpec, hookimpl

MAX_ERROR_CHARS = 500
"""An error line is at most this long (values are quoted in short, never whole)."""


@dataclass(frozen=True)
class Fault:
    """One row of the table: ``argv(folder)`` gives the command line in the case folder."""

    id: str
    argv: Callable[[Path], list]
    code: int
    fragment: str
    plugins: tuple = ()
    env: dict = field(default_factory=dict)
    new_files: tuple[str, ...] = ()
    """Files a successful (exit 0) case may create."""


# -- plugins that break the contract ----------------------------------------------------------

def _flat(size, rng, config, arg):
    return np.full((size, size), 0.5)


def _hello() -> None:
    """Say hello."""
    print("hello")


def _plugin(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, value in hooks.items():
        setattr(module, hook, hookimpl(lambda value=value: value))
    return module


def _helper_plugin() -> types.ModuleType:
    module = _plugin("helper-plugin", ptycho_commands=[CommandSpec("hello", _hello)])
    module.ptycho_format_number = lambda x: f"{x:.3g}"  # unmarked helper: not a hook
    return module


WRONG_RECORD = _plugin("wrong-record", ptycho_commands=[ObjectSpec("oops", _flat)])
STRING_PROBES = _plugin("string-probes", ptycho_probes="ideal")
CLASHING = _plugin("clashing", ptycho_objects=[ObjectSpec("lines", _flat)])
BAD_SHAPE = _plugin("bad-shape", ptycho_objects=[ObjectSpec("small", lambda size, rng, c, a: np.zeros((8, 8)))])
TEXT_PROBE = _plugin("text-probe", ptycho_probes=[ProbeSpec("text", lambda N, c, a: "a probe")])
OUTSIDE_SCAN = _plugin("outside-scan", ptycho_scans=[ScanSpec("edge", lambda shape, N, c, rng: ([0.0], [0.0]))])
SIM = ["simulate", "--N", "32", "--size", "64", "--n-images", "8", "--no-preview"]


def at(*names):
    """``argv`` builder: each ``@name`` (also inside an argument, ``file:@d.h5``) becomes that file
    of the case folder."""
    def argv(folder: Path) -> list:
        return [re.sub(r"@([\w./-]+)", lambda m: str(folder / m.group(1)), n) for n in names]
    return argv


FAULTS = [
    # item 2: an output that is an input is refused, exit 2, nothing touched
    Fault("infer-out-is-the-dataset", at("infer", "@model", "@d.h5", "--out", "@d.h5"), 2, "is the dataset it reads"),
    Fault("infer-out-is-a-link-to-the-dataset", at("infer", "@model", "@d.h5", "--out", "@link.h5"), 2,
          "is the dataset it reads"),
    Fault("infer-out-is-the-probe-file", at("infer", "@model", "@d.h5", "--probe", "@other.h5", "--out", "@other.h5"),
          2, "is the probe file it reads"),
    Fault("infer-out-is-the-mask-file", at("infer", "@model", "@d.h5", "--mask", "@other.h5", "--out", "@other.h5"),
          2, "is the mask file it reads"),
    Fault("infer-out-is-a-bundle-file", at("infer", "@model", "@d.h5", "--out", "@model/history.json"), 2, "model file"),
    Fault("stitch-out-is-the-patches", at("stitch", "@p.h5", "--out", "@p.h5"), 2, "is the patches file it reads"),
    Fault("export-out-is-the-dataset", at("export-ptychodus", "@o.npz", "--dataset", "@d.h5", "--out", "@d.h5"), 2,
          "is the dataset it reads"),
    Fault("export-out-is-the-object", at("export-ptychodus", "@o.h5", "--dataset", "@d.h5", "--out", "@o.h5"), 2,
          "is the object it reads"),
    Fault("simulate-out-is-the-probe-file", at(*SIM, "--probe", "file:@d.h5", "--out", "@d.h5"), 2,
          "is the probe file it reads"),
    Fault("evaluate-out-is-the-object", at("evaluate", "@o.npz", "--truth", "@d.h5", "--out", "@o.npz"), 2, "is a file"),
    # item 3: a non-empty bundle folder needs --resume or --force
    Fault("train-into-a-bundle", at("train", "@d.h5", "--out", "@model"), 2, "already holds a model bundle"),
    Fault("train-into-a-folder-of-files", at("train", "@d.h5", "--out", "@notes"), 2, "mine.txt"),
    Fault("train-into-the-dataset", at("train", "@d.h5", "--out", "@d.h5"), 2, "is a file"),
    Fault("train-resume-and-force", at("train", "@d.h5", "--out", "@model", "--resume", "--force"), 2, "contradict"),
    # item 6: exit 2 or 3, never 1
    Fault("position-1e300", at("train", "@far.h5", "--out", "@m"), 3, "positions span"),
    Fault("npz-header-declares-tib", at("train", "@huge.npz", "--out", "@m"), 3, "declares shape (1000000, 1000, 1000)"),
    Fault("h5-declares-1e12-positions", at("train", "@huge-x.h5", "--out", "@m"), 3, "stores only"),
    Fault("config-section-not-a-mapping", at(*SIM, "--config", "@section.yaml", "--out", "@x.h5"), 2,
          "expected a mapping"),
    Fault("nphotons-1e36", at(*SIM, "--nphotons", "1e36", "--out", "@x.h5"), 2, "at most 1e+18 photons"),
    Fault("pickled-probe-in-a-bundle", at("infer", "@pickled-model", "@d.h5", "--out", "@p2.h5"), 3,
          "cannot read the probe"),
    Fault("out-under-a-file", at(*SIM, "--out", "@afile/x.h5"), 2, "is a file, not a directory"),
    Fault("out-in-proc", at(*SIM, "--out", "/proc/ptycho-fault.h5"), 2, "cannot write in /proc"),
    Fault("out-is-a-directory", at(*SIM, "--out", "@adir.h5"), 2, "is a directory"),
    Fault("out-is-empty", at(*SIM, "--out", ""), 2, "has no file name"),
    Fault("infer-out-is-a-directory", at("infer", "@model", "@d.h5", "--out", "@adir.h5"), 2, "is a directory"),
    Fault("stitch-out-under-a-file", at("stitch", "@p.h5", "--out", "@afile/o.npz"), 2, "is a file, not a directory"),
    Fault("evaluate-out-under-a-file", at("evaluate", "@o.npz", "--truth", "@d.h5", "--out", "@afile/eval"), 2,
          "is a file, not a directory"),
    # item 7: declared sizes checked against the file's storage before reading
    Fault("h5-declares-1e8-unwritten-patterns", at("train", "@unwritten.h5", "--out", "@m"), 3,
          "only 0 hold data"),
    # item 8: alias expansion refused, values quoted in short
    Fault("yaml-alias-bomb", at(*SIM, "--config", "@bomb.yaml", "--out", "@x.h5"), 2, "expands to more than 100000"),
    Fault("long-value-is-cut", at(*SIM, "--config", "@long.yaml", "--out", "@x.h5"), 2, "simulate.seed"),
    # item 9: usage errors are one line too
    Fault("missing-option", at("train", "@d.h5"), 2, "Missing option '--out'"),
    Fault("unknown-option", at("train", "@d.h5", "--out", "@m", "--bogus"), 2, "No such option: --bogus"),
    Fault("unknown-command", at("trian"), 2, "No such command 'trian'"),
    # item 10: the truth is validated like any input, and must be the reconstruction's own
    Fault("evaluate-against-another-object", at("evaluate", "@o.npz", "--truth", "@other.h5", "--out", "@e"), 3,
          "not the ground truth of"),
    Fault("evaluate-truth-with-nan", at("evaluate", "@o.npz", "--truth", "@nan.h5", "--out", "@e"), 3, "NaN"),
    Fault("side-by-side-against-another-object", at("evaluate", "@o.npz", "@o.h5", "--truth", "@other.h5", "--out",
                                                    "@e"), 3, "not the ground truth of"),
    Fault("side-by-side-truth-with-nan", at("evaluate", "@o.npz", "@o.h5", "--truth", "@nan.h5", "--out", "@e"), 3,
          "NaN"),
    Fault("side-by-side-out-under-a-file", at("evaluate", "@o.npz", "@o.h5", "--truth", "@d.h5", "--out",
                                              "@afile/eval"), 2, "is a file, not a directory"),
    # item 11: a plugin returning the wrong type is reported by name and skipped
    Fault("command-hook-returns-objectspec", at("--help"), 0, "plugin 'wrong-record' skipped", plugins=(WRONG_RECORD,)),
    Fault("probe-hook-returns-a-string", at("plugins"), 0, "plugin 'string-probes' skipped", plugins=(STRING_PROBES,)),
    Fault("unmarked-helper-is-not-a-hook", at("hello"), 0, "", plugins=(_helper_plugin(),)),
    Fault("clash-drops-only-the-record", at("plugins"), 0, "object 'lines' ignored, 'builtin.physics' provides it",
          plugins=(CLASHING,)),
    # item 12: no silent surprises
    Fault("step-on-a-random-scan", at(*SIM, "--step", "4", "--out", "@x.h5"), 2, "applies to grid scans only"),
    Fault("argument-to-a-scan", at(*SIM, "--scan", "grid:5", "--out", "@x.h5"), 2, "scans take no argument"),
    Fault("typo-in-disable-plugins", at("--help"), 0, "names 'builtin.stich'",
          env={"PTYCHO_DISABLE_PLUGINS": "builtin.stich"}),
    Fault("object-of-the-wrong-shape", at(*SIM, "--object", "small", "--out", "@x.h5"), 3,
          "returned a float64 array of shape (8, 8)", plugins=(BAD_SHAPE,)),
    Fault("probe-maker-returns-text", at(*SIM, "--probe", "text", "--out", "@x.h5"), 3, "probe 'text' returned a str",
          plugins=(TEXT_PROBE,)),
    Fault("scan-outside-the-object", at(*SIM, "--scan", "edge", "--out", "@x.h5"), 3, "outside the 64×64 object",
          plugins=(OUTSIDE_SCAN,)),
    # item 15: every missing physical value in one run
    Fault("export-misses-all-three-values", at("export-ptychodus", "@bare-o.npz", "--dataset", "@bare.h5", "--out",
                                               "@prod.h5"), 3,
          "photon_energy_eV, detector_distance_m, pixel_size_m are not in the dataset metadata"),
]


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault(fault: Fault, fault_inputs: Path, tmp_path: Path, monkeypatch, capsys):
    from ptycho_cli.app import make_app

    monkeypatch.setenv("COLUMNS", "300")  # Typer wraps messages at the terminal width
    folder = tmp_path / "case"
    shutil.copytree(fault_inputs, folder, symlinks=True)
    before = digests(folder)
    app = make_app(plugins=fault.plugins, env=fault.env)
    built = capsys.readouterr().err  # plugin reports are printed when the app is built
    result = CliRunner().invoke(app, [str(a) for a in fault.argv(folder)], catch_exceptions=False)

    assert result.exit_code == fault.code, result.output
    assert fault.fragment in built + result.stderr, built + result.stderr
    assert "Traceback" not in result.output and "╭" not in result.stderr
    after = digests(folder)
    assert {k: v for k, v in after.items() if k in before} == before, "an input was changed or lost"
    created = sorted(set(after) - set(before))
    if fault.code:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and len(errors[0]) <= MAX_ERROR_CHARS, result.stderr
        assert created == [], f"a refused run wrote {created}"
    else:
        assert all(any(name.startswith(n) for n in fault.new_files) for name in created), created
    assert not [p for p in folder.rglob("*") if ".tmp-" in p.name or p.name.startswith(".staging-")]


def test_the_table_covers_every_exit_code_promised():
    assert {f.code for f in FAULTS} == {0, 2, 3}
    assert len({f.id for f in FAULTS}) == len(FAULTS)
