"""Meta-tests of the plugin interface (in the manner of llm's and datasette's): every hook is
documented in docs/plugins.md with its signature and exercised by a test; the records and the
public API are documented; the probe, scan and model hooks work end to end; and the example
third-party plugin installs into a plain folder and works through the real entry point."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from ptycho_cli import api, hookspecs, specs
from ptycho_cli.api import ModelSpec, ProbeSpec, ScanSpec, hookimpl

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "examples" / "third-party-plugin"
TEST_FILES = sorted([*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/*/tests/**/*.py")])


def hook_functions() -> dict[str, object]:
    """Every hookspec of ``ptycho_cli.hookspecs`` (functions pluggy marked as specs)."""
    return {name: fn for name, fn in vars(hookspecs).items()
            if name.startswith("ptycho_") and callable(fn) and hasattr(fn, f"{hookspecs.PROJECT}_spec")}


def signature_text(fn) -> str:
    """``ptycho_objects() -> Iterable[ObjectSpec]``, annotations as written in the source."""
    sig = inspect.signature(fn)
    params = ", ".join(p.name + ("" if p.annotation is p.empty else f": {p.annotation}") for p in sig.parameters.values())
    return f"{fn.__name__}({params}) -> {sig.return_annotation}"


# --------------------------------------------------------------------------- documentation

def test_there_are_hooks_to_check():
    assert set(hook_functions()) >= {"ptycho_commands", "ptycho_objects", "ptycho_probes", "ptycho_scans",
                                     "ptycho_models", "ptycho_ab_variants"}


@pytest.mark.parametrize("name", sorted(hook_functions()))
def test_every_hook_is_documented_with_its_signature(name):
    fn = hook_functions()[name]
    docs = DOCS.read_text(encoding="utf-8")
    assert f"### `{signature_text(fn)}`" in docs, f"docs/plugins.md lacks a section '### `{signature_text(fn)}`'"
    assert fn.__doc__ and "Example" in fn.__doc__, f"{name}: hookspec docstring needs an example"


@pytest.mark.parametrize("name", sorted(hook_functions()))
def test_every_hook_is_exercised_by_a_test(name):
    """A test implements the hook (``@hookimpl def NAME`` / ``NAME = hookimpl(…)``) or calls it."""
    patterns = [rf"@hookimpl\s*\n\s*def {name}\(", rf"\.{name}\s*=\s*hookimpl\(", rf"hook\.{name}\("]
    users = [path.relative_to(ROOT) for path in TEST_FILES
             if any(re.search(p, path.read_text(encoding="utf-8")) for p in patterns)]
    assert users, f"no test implements or calls {name}"


def _signature(cls) -> str:
    """``Record(a, b, c=None)`` as the docs write a record's constructor."""
    from dataclasses import MISSING

    shown = lambda v: f'"{v}"' if isinstance(v, str) else repr(v)  # noqa: E731 - the docs quote with "
    parts = [f.name if f.default is MISSING else f"{f.name}={shown(f.default)}" for f in fields(cls)]
    return f"`{cls.__name__}({', '.join(parts)})`"


def _hook_section(docs: str, record: str) -> str:
    """The text of the ``### `ptycho_…() -> Iterable[record]``` section of the docs."""
    match = re.search(rf"^### `ptycho_\w+\(\) -> Iterable\[{record}\]`$(.*?)(?=^##)", docs, flags=re.M | re.S)
    assert match, f"docs/plugins.md has no hook section returning {record}"
    return match.group(1)


@pytest.mark.parametrize("record", specs.__all__)
def test_every_record_field_is_documented(record):
    """Each record's hook section shows its exact constructor (every field, in order, with its
    default) and explains every field but ``name`` in a bullet of its own."""
    cls = getattr(specs, record)
    section = _hook_section(DOCS.read_text(encoding="utf-8"), record)
    assert _signature(cls) in section, f"{record}: the docs should show {_signature(cls)}"
    for field in fields(cls)[1:]:
        assert re.search(rf"^- `{field.name}\b", section, flags=re.M), f"{record}.{field.name} has no bullet"


def test_public_api_is_documented_and_light():
    docs = DOCS.read_text(encoding="utf-8")
    assert "ptycho_cli.api" in docs and "PTYCHO_DISABLE_PLUGINS" in docs and "[project.entry-points.ptycho]" in docs
    for name in api.__all__:
        assert f"`{name}" in docs, f"ptycho_cli.api.{name} is not in docs/plugins.md"
        assert getattr(api, name) is not None
    code = "import sys, ptycho_cli.api; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- probe, scan, model hooks

def annulus_probe(N, config, arg):
    yy, xx = np.mgrid[0:N, 0:N] - (N - 1) / 2
    r = np.hypot(yy, xx) / N
    return ((r < config.diameter_frac / 2) & (r > config.diameter_frac / 4)).astype(np.complex64)


def spiral_scan(object_shape, N, config, rng):
    from ptycho.physics.scan import valid_range

    (y0, y1), (x0, x1) = valid_range(object_shape[0], N), valid_range(object_shape[1], N)
    k = np.arange(config.n_images)
    r, t = np.sqrt(k / max(config.n_images - 1, 1)), k * np.pi * (3 - np.sqrt(5))
    return (x0 + x1) / 2 + r * np.cos(t) * (x1 - x0) / 2, (y0 + y1) / 2 + r * np.sin(t) * (y1 - y0) / 2


class PhysicsPlugin:
    """An in-process plugin implementing the probe, scan and model hooks (as in docs/plugins.md)."""

    __name__ = "physics-plugin"

    def __init__(self):
        self.built = []

    def build_narrow(self, config):
        from ptycho.models.network import build_cnn

        self.built.append(config)
        return build_cnn(config.model_copy(update={"n_filters_scale": 1}))

    @hookimpl
    def ptycho_probes(self):
        return [ProbeSpec("annulus", annulus_probe, "annular aperture")]

    @hookimpl
    def ptycho_scans(self):
        return [ScanSpec("spiral", spiral_scan, "Fermat spiral")]

    @hookimpl
    def ptycho_models(self):
        return [ModelSpec("cnn-narrow", self.build_narrow, "the cnn at its narrowest")]


def test_probe_scan_and_model_hooks_end_to_end(invoke, tmp_path):
    from ptycho.io.datasets import load_dataset
    from ptycho.models.bundle import load_bundle
    from ptycho.registry import Components

    plugin = PhysicsPlugin()
    data = tmp_path / "d.npz"
    result = invoke("simulate", "--probe", "annulus", "--scan", "spiral", "--N", "32", "--size", "64",
                    "--n-images", "24", "--nphotons", "1e6", "--no-preview", "--out", data, "-q", plugins=[plugin])
    assert result.exit_code == 0, result.output
    with load_dataset(data) as ds:
        power = np.abs(ds.probe) ** 2
        assert power.sum() == pytest.approx(1e6, rel=1e-4) and power[16, 16] == 0 and power.max() > 0  # annulus
        r = np.hypot(ds.x - ds.x.mean(), ds.y - ds.y.mean())
        assert r[0] < 1 and r[-1] > 10  # spiral: from the centre outwards
    model = tmp_path / "m"
    result = invoke("train", data, "--out", model, "--epochs", "1", "--no-jit", "--set", "model.architecture=cnn-narrow",
                    "--set", "model.n_filters_scale=2", "-q", plugins=[plugin])
    assert result.exit_code == 0, result.output
    assert plugin.built and plugin.built[0].architecture == "cnn-narrow"
    components = Components.from_specs(models=plugin.ptycho_models())
    assert load_bundle(model, components).model.config.architecture == "cnn-narrow"
    result = invoke("train", data, "--out", tmp_path / "m2", "--epochs", "1", "--set", "model.architecture=cnn-narrow")
    assert result.exit_code == 2 and "unknown model 'cnn-narrow'" in result.output  # plugin not registered


# --------------------------------------------------------------------------- the example plugin

@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """The example plugin installed (not editable, no dependencies) into a bare folder."""
    work = tmp_path_factory.mktemp("example")
    source = work / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    # Build with the environment's setuptools when it has one (no network needed); otherwise let pip
    # fetch the build backend in an isolated environment.
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *isolation,
                           "--no-input", "--disable-pip-version-check", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert (target / "ptycho_rings" / "plugin.py").is_file()
    return target


def run_ptycho(site: Path, calls: list[list[str]], cwd: Path, env: dict | None = None) -> list[dict]:
    """Run ``ptycho`` once per call in one subprocess with ``PYTHONPATH=site``; exit code and stdout each."""
    script = textwrap.dedent("""
        import contextlib, io, json, sys
        from ptycho_cli.app import main
        results = []
        for args in json.loads(sys.argv[1]):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = main(args)
            results.append({"args": args, "code": code, "stdout": out.getvalue()})
        print("RESULTS" + json.dumps(results))
    """)
    environ = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "2", "PTYCHO_DISABLE_PLUGINS": "",
               **(env or {})}
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(calls)], capture_output=True, text=True,
                          timeout=240, cwd=cwd, env=environ)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.rsplit("RESULTS", 1)[1])


def test_example_plugin_installs_and_runs_through_the_entry_point(installed_example, tmp_path):
    tiny = ["--N", "32", "--size", "64", "--n-images", "16"]
    listing, preview, simulated, ab = run_ptycho(installed_example, [
        ["plugins", "--json"],
        ["object-preview", "rings:8", "--size", "64", "--out", "rings.png", "--json"],
        ["simulate", "--object", "rings", *tiny, "--no-preview", "--out", "rings.npz", "--json"],
        ["debug-ab", "base", "rings-object", "--stages", "simulate", "--n-images", "16", "--no-figure",
         "--set", "debug_ab.N=32", "--set", "debug_ab.object_size=64", "--out", "ab", "--json"],
    ], cwd=tmp_path)
    assert listing["code"] == 0
    record = next(p for p in json.loads(listing["stdout"])["plugins"] if p["name"] == "rings")
    assert record["version"] == "0.1.0" and not record["builtin"]
    assert record["provides"] == {"commands": ["object-preview"], "objects": ["rings"], "variants": ["rings-object"]}
    assert preview["code"] == 0 and (tmp_path / "rings.png").stat().st_size > 0
    assert json.loads(preview["stdout"])["object"] == "rings:8"
    assert simulated["code"] == 0, simulated
    from ptycho.io.datasets import load_dataset

    with load_dataset(tmp_path / "rings.npz") as ds:
        assert ds.n_patterns == 16 and ds.metadata["config"]["simulate"]["object"]["kind"] == "rings"
    assert ab["code"] == 0, ab
    report = json.loads(ab["stdout"])
    diff = {row["key"]: (row["a"], row["b"]) for row in report["config_diff"]}
    assert diff == {"simulate.object.kind": ("lines", "rings")}


def test_example_plugin_disabled_and_bad_argument(installed_example, tmp_path):
    disabled, = run_ptycho(installed_example, [["plugins", "--json"]], cwd=tmp_path,
                           env={"PTYCHO_DISABLE_PLUGINS": "rings"})
    assert "rings" not in {p["name"] for p in json.loads(disabled["stdout"])["plugins"]}
    gone, bad = run_ptycho(installed_example, [["object-preview", "--help"],
                                               ["object-preview", "rings:x", "--out", "x.png"]], cwd=tmp_path,
                           env={"PTYCHO_DISABLE_PLUGINS": ""})
    assert gone["code"] == 0 and "registered object" in gone["stdout"]
    assert bad["code"] == 2 and not (tmp_path / "x.png").exists()
    _, blocked = run_ptycho(installed_example, [["plugins"], ["object-preview", "--help"]], cwd=tmp_path,
                            env={"PTYCHO_DISABLE_PLUGINS": "ptycho-rings"})
    assert blocked["code"] == 2  # blocked by distribution name too: "No such command"
