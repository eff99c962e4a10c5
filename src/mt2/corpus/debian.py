"""Debian packages for the real-music corpus (:mod:`mt2.corpus.real`): the reserved names
refused outright, where a package's files are (installed, or fetched with ``apt-get download``
and unpacked with ``dpkg-deb -x``, which needs neither root nor the game), and the license of a
packaged file read from its ``/usr/share/doc/<package>/copyright``."""
from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

#: Packages kept for outside evaluation (docs/design.md section 4): refused by name (fnmatch patterns).
RESERVED = ("wesnoth-*music*", "warzone2100-music", "fretsonfire-songs-*", "fluid-soundfont-gm", "fluid-soundfont-gs",
            "fluidr3mono-gm-soundfont", "fluidr3*", "musescore-general-soundfont*", "musescore*-soundfont*",
            "musescore3-general*")


def is_reserved(package: str) -> bool:
    """Whether ``package`` is kept for outside evaluation (never installed, read or listed here)."""
    return any(fnmatch.fnmatch(package, pattern) for pattern in RESERVED)


def refuse_reserved(names) -> None:
    """Raise ValueError naming any reserved package in ``names``."""
    bad = [n for n in names if is_reserved(n)]
    if bad:
        raise ValueError(f"{', '.join(bad)}: reserved for outside evaluation (docs/design.md section 4); never installed, "
                         "read, trained or evaluated on here")


# ----------------------------------------------------------------------------- installing


def apt_status() -> tuple[bool, str]:
    """Whether ``apt-get install`` can run here, and why not."""
    if not Path("/etc/debian_version").exists() or shutil.which("apt-get") is None:
        return False, "this is not a Debian system (no apt-get)"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return False, "apt-get needs root (run as root, or install the packages yourself and pass --no-install)"
    return True, ""


def install_packages(packages: list[str], log: Callable[[str], None] = print) -> list[str]:
    """``apt-get install -y`` of ``packages`` one by one; returns those that failed (each named)."""
    refuse_reserved(packages)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    failed = []
    for package in packages:
        if installed_files(package):
            continue
        log(f"apt-get install {package}")
        done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package], env=env,
                              capture_output=True, text=True)
        if done.returncode:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-1:])
            log(f"  {package}: apt-get failed ({tail}); skipped")
            failed.append(package)
    return failed


def fetch_package(package: str, cache: Path, log: Callable[[str], None] = print) -> Path | None:
    """The root of ``package``'s files unpacked under ``cache`` (``cache/root/<package>``).

    The ``.deb`` is fetched once with ``apt-get download`` into ``cache/debs`` (no root needed)
    and unpacked with ``dpkg-deb -x`` into a temporary folder that is renamed when complete, so
    an interrupted run fetches or unpacks again rather than reading half a package. Returns
    None (with a message naming the package and the reason) where either step fails.
    """
    refuse_reserved([package])
    root = cache / "root" / package
    if root.is_dir():
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        log(f"{package}: apt-get and dpkg-deb are needed to fetch it (this is not a Debian system); skipped")
        return None
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        log(f"apt-get download {package}")
        done = subprocess.run(["apt-get", "download", package], cwd=debs, capture_output=True, text=True)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if done.returncode or not found:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-1:])
            log(f"  {package}: apt-get download failed ({tail}); skipped (run `apt-get update` first if the index is old)")
            return None
    partial = root.with_name(f".{package}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    log(f"dpkg-deb -x {found[-1].name}")
    done = subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(partial)], capture_output=True, text=True)
    if done.returncode:
        log(f"  {package}: dpkg-deb -x failed ({done.stderr.strip()[-200:]}); delete {found[-1]} to fetch it again")
        shutil.rmtree(partial, ignore_errors=True)
        return None
    os.replace(partial, root)
    return root


def unpacked_files(root: Path) -> list[Path]:
    """The regular files under an unpacked package ``root``, sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def installed_files(package: str) -> list[Path]:
    """The regular files of an installed Debian package (``dpkg-query -L``); empty if not installed."""
    if is_reserved(package) or shutil.which("dpkg-query") is None:
        return []
    done = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True)
    if done.returncode:
        return []
    return sorted(Path(line) for line in done.stdout.splitlines() if line.startswith("/") and Path(line).is_file())


# ----------------------------------------------------------------------------- licenses


def license_of(copyright_file: Path, origin: str) -> str:
    """The license of ``origin`` (a packaged path) from a Debian copyright file.

    Machine-readable (DEP-5) files: the ``License`` of the last ``Files`` stanza whose pattern
    matches the path's end (the format's rule). Other files: recognised from their text
    (GPL versions, Creative Commons by its URL or conditions); else ``"see <file>"``.
    """
    try:
        text = copyright_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown (no copyright file)"
    if text.startswith("Format:"):
        found = None
        for stanza in re.split(r"\n\s*\n", text):
            match = re.search(r"^Files:(.*?)(?=^\S)", stanza + "\nEnd:", re.S | re.M)
            name = re.search(r"^License:\s*(\S.*)$", stanza, re.M)
            if not match or not name:
                continue
            patterns = match.group(1).split()
            if any(p == "*" or fnmatch.fnmatch("/" + origin, "*/" + p) for p in patterns):
                found = name.group(1).strip()
        if found:
            return found
    flat = " ".join(text.split())
    url = re.search(r"creativecommons\.org/licenses/([a-z-]+)/(\d\.\d)", flat)
    if url:
        return f"CC-{url.group(1).upper()}-{url.group(2)}"
    if "CREATIVE COMMONS" in flat.upper():
        conditions = re.search(r"License Elements?[^:]*:\s*([A-Za-z, -]+?)\.", flat)
        parts = conditions.group(1) if conditions else ""
        short = "-".join(code for word, code in (("Attribution", "BY"), ("NonCommercial", "NC"), ("NoDerivs", "ND"),
                                                 ("ShareAlike", "SA")) if word in parts)
        return f"CC-{short or '?'} (text in {copyright_file})"
    if "GNU General Public License" in flat:
        version = re.search(r"version (\d)", flat)
        later = re.search(r"(or \(at your option\) any later|or later)", flat)
        return f"GPL-{version.group(1) if version else '?'}{'+' if later else ''}"
    return f"see {copyright_file}"
