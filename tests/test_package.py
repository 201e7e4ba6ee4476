"""The installable package: a wheel built from the source tree, installed into a fresh virtual
environment, gives the ``folk-instrument`` command, which plays its part from another directory
with the patches and the model the wheel ships.

The venv has no system site-packages. The wheel goes in with ``pip install --no-deps`` and the
dependencies already installed for the tests (torch alone is ~1 GB) are made visible through a
``.pth`` line naming their directory: a full resolve of them would take minutes and a network.
That line adds a path only, so nothing of this source tree (an editable install's hook) comes
along: the test checks that ``instrument`` and ``patches`` are imported from the venv.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ directory of a fresh venv holding our wheel."""
    work = tmp_path_factory.mktemp("package")
    wheels = work / "dist"
    # from a copy without earlier builds: a stale build/ or egg-info would bring files that
    # pyproject.toml's package data no longer names
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                                ".venv", "takes"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(source)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = list(wheels.glob("folk_instrument-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=clean_env())
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                             capture_output=True, text=True, timeout=300, env=clean_env())
    assert install.returncode == 0, install.stderr[-3000:]
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, env=clean_env()).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    Path(purelib, "test-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return venv / "bin"


def clean_env() -> dict:
    """The environment without what points at this source tree (PYTHONPATH would let pip take the
    tree's egg-info for an installation, and Python import the tree instead of the wheel)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = clean_env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_wheel_installs_a_command_that_plays_its_part_from_anywhere(installed, tmp_path):
    where = run(installed, str(installed / "python"), "-c",
                "import instrument, patches; print(instrument.__file__); print(patches.DIR)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(installed.parent)) for line in where.stdout.split()), where.stdout  # not the source tree
    shipped = run(installed, str(installed / "python"), "-c",
                  "import patches; print('\\n'.join(str(p) for p in patches.shipped()))", cwd=tmp_path).stdout.split()
    assert {Path(p).name for p in shipped} == {p.name for p in (ROOT / "patches").glob("*.yaml")}

    helped = run(installed, "folk-instrument", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "usage: folk-instrument <command>" in helped.stdout
    checked = run(installed, "folk-instrument", "patch", "check", *shipped, cwd=tmp_path)
    assert checked.returncode == 0 and checked.stdout.count(": ok (") == len(shipped), checked.stderr
    generated = run(installed, "folk-instrument", "generate", "-n", "1", "--seed", "1", cwd=tmp_path)
    assert generated.returncode == 0 and generated.stdout.startswith("M:"), generated.stderr
    played = run(installed, "folk-instrument", "play", "--bars", "2", "--midi-out", "none", "--no-audio", "--quiet",
                 "--no-osc", "--no-myo", "--midi-in", "none", "--record", "take.mid", "--tempo", "300", cwd=tmp_path)
    assert played.returncode == 0 and "limit reached" in played.stderr, played.stderr  # the shipped default patch
    assert (tmp_path / "take.mid").stat().st_size > 0

    # the C parts ship as package data and build from the wheel's copies (into a fresh cache)
    cache = tmp_path / "cache"
    built = run(installed, "env", f"FOLK_INSTRUMENT_CACHE={cache}", str(installed / "python"), "-c",
                "import ctypes; from instrument import native; from instrument.model import fast_step; "
                "from instrument.outputs import synth; "
                "ctypes.CDLL(str(native.built(synth.RING_SOURCE, synth.RING_FLAGS, synth.RING_LIBS))); "
                "print(synth.RING_SOURCE); print(fast_step.available())", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    source, fast = built.stdout.split()
    assert source.startswith(str(installed.parent)) and fast == "True", built.stdout
    assert sorted(p.name.split("-")[0] for p in cache.glob("*.so")) == ["audio_ring", "fast_step"]


def test_the_wheel_serves_the_web_page_with_its_vendored_abcjs(installed, tmp_path):
    """The page's static files and abcjs are package data: ``view`` from the venv serves them."""
    import urllib.request

    from bench.harness.net import free_tcp_port

    played = run(installed, "folk-instrument", "play", "--bars", "1", "--midi-out", "none", "--no-audio", "--quiet",
                 "--no-osc", "--no-myo", "--midi-in", "none", "--no-web", "--record", "take.mid", "--tempo", "300",
                 cwd=tmp_path)
    assert played.returncode == 0, played.stderr
    port = free_tcp_port()
    env = clean_env()
    env["PATH"] = f"{installed}{os.pathsep}{env.get('PATH', '')}"
    view = subprocess.Popen(["folk-instrument", "view", "take.mid", "--web", f"127.0.0.1:{port}"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lines = view.stderr.readline() + view.stderr.readline()
        assert f"web page: http://127.0.0.1:{port}/" in lines, lines
        static = ROOT / "instrument" / "web" / "static"
        for path, source in (("/", static / "index.html"), ("/static/app.js", static / "app.js"),
                             ("/static/vendor/abcjs-basic-min.js", static / "vendor" / "abcjs-basic-min.js")):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as reply:
                assert reply.status == 200 and reply.read() == source.read_bytes(), path
    finally:
        view.terminate()
        view.wait(30)
    assert view.returncode == 0
    files = run(installed, str(installed / "python"), "-c",
                "from instrument.web.server import STATIC; print(*sorted(p.name for p in STATIC.rglob('*')))", cwd=tmp_path)
    assert {"abcjs-LICENSE.md", "abcjs-VERSION.txt", "abcjs-basic-min.js.LICENSE"} <= set(files.stdout.split()), files.stderr


def test_a_missing_dependency_is_one_line_saying_what_to_install(tmp_path):
    """As a new user who has not installed torch: one line naming it, with the CPU-only wheel."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "torch.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = dict(os.environ, PYTHONPATH=f"{hide}{os.pathsep}{ROOT}")
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "generate", "-n", "1"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "the Python package 'torch' is missing" in lines[0], result.stderr
    assert "https://download.pytorch.org/whl/cpu" in lines[0]
