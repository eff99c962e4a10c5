"""The architecture of docs/design.md section 1: imports point down only (the import-linter
contracts of ``pyproject.toml``), and the core install is what ``embed`` and ``key`` need."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mt2

SRC = Path(mt2.__file__).resolve().parents[1]
ROOT = SRC.parent
#: Packages of the extras (pyproject.toml), none of which ``load``, ``embed`` or ``key`` may need.
OPTIONAL = (
    "lightning", "pytorch_lightning", "webdataset", "yaml", "matplotlib", "sklearn", "music21",
    "pretty_midi", "tinysoundfont", "mir_eval", "librosa", "hearvalidator",
)


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_imports_keep_the_contracts():
    lint = Path(sys.executable).with_name("lint-imports")
    result = _run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_import_circle_counting_imports_for_annotations():
    """No module of the package imports itself back through any chain, the imports under
    ``TYPE_CHECKING`` included (the acyclic-siblings contract sees sibling packages; this sees
    every module). A circle is named as its chain; break it by moving the shared name down."""
    import grimp

    graph = grimp.build_graph("mt2", exclude_type_checking_imports=False, cache_dir=None)
    circles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                circles.append(" -> ".join((module, *back)))
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_embed_and_key_run_with_the_optional_packages_hidden(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys

        HIDDEN = {set(OPTIONAL)!r}

        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in HIDDEN:
                    raise ModuleNotFoundError(f"{{name}} is hidden (an extra)", name=name)

        sys.meta_path.insert(0, Hide())
        import numpy as np
        import mt2

        assert "torch" not in sys.modules, "import mt2 loaded torch"
        encoder = mt2.load("mt2")
        sr = 22050
        t = np.arange(5 * sr) / sr
        triad = sum(np.sin(2 * np.pi * 440 * 2 ** (s / 12) * t) for s in (3, 7, 10)).astype(np.float32)  # C major
        embedding = encoder.embed(triad, sr)
        assert embedding.clip.shape == (encoder.embedding_size,) and np.isfinite(embedding.clip).all()
        estimate = encoder.key(triad, sr)
        assert estimate.mode in ("major", "minor") and 0 <= estimate.confidence <= 1
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
        assert not loaded, loaded
        try:
            import mt2.training.lightning
        except ImportError as error:
            print("hidden:", error)
        print("key:", estimate.key)

        import soundfile
        from mt2.cli import main

        path = sys.argv[1] + "/triad.wav"
        soundfile.write(path, triad, sr)
        assert main(["key", path]) == 0  # the command line works in a core install
        assert main(["study", "--corpus", "x"]) == 2  # and names the extra where it cannot
        """
    )
    result = _run([sys.executable, "-c", script, str(tmp_path)])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "hidden: lightning is hidden" in result.stdout
    assert "mt2 study needs the optional package" in result.stderr  # the finder did hide the extras
    assert "key: " in result.stdout
