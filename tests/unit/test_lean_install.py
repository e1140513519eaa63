"""A producer's install (no extras, docs/install.md) runs the commands it has, and a command
that needs an extra says which one instead of a traceback.

Each case runs `streamrec` in a fresh interpreter in which the extras' modules cannot be
imported, as in an environment where they were never installed; .ci/run also installs the
package without extras in a new virtualenv and runs the same commands there.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

# The import names of the connector and worker extras' distributions, where they differ
# from the distribution's name.
IMPORT_NAMES = {
    "faust-streaming": "faust",
    "faiss-cpu": "faiss",
    "prometheus-client": "prometheus_client",
}

_RUN_WITHOUT = """
import sys
from importlib.abc import MetaPathFinder

class Uninstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

BLOCKED = set(sys.argv[1].split(","))
sys.meta_path.insert(0, Uninstalled())
sys.argv = ["streamrec", *sys.argv[2:]]
from connector.cli import main
main()
"""


def extra_modules() -> list[str]:
    """The top-level import names of the connector and worker extras' requirements."""
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    names = []
    for requirement in extras["connector"] + extras["worker"]:
        if requirement.startswith("streamrec["):
            continue
        distribution = requirement.split(">")[0].split("=")[0].split("<")[0].strip()
        names.append(IMPORT_NAMES.get(distribution, distribution.replace("-", "_")))
    return names


def streamrec_without_extras(*args: str) -> subprocess.CompletedProcess[str]:
    blocked = ",".join(extra_modules())
    return subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT, blocked, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_extras_name_the_heavy_libraries() -> None:
    assert {"faust", "redis", "numpy", "faiss", "aiohttp", "matplotlib", "scipy"} <= set(
        extra_modules()
    )


@pytest.mark.parametrize("command", ["schemas", "filters", "trackers", "config"])
def test_a_producer_install_runs_its_commands(command: str) -> None:
    done = streamrec_without_extras(command, "--help")
    assert done.returncode == 0, done.stderr
    assert "Example" in done.stdout


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("api", "connector"),
        ("connector", "connector"),
        ("status", "connector"),
        ("train", "worker"),
    ],
)
def test_a_command_of_an_extra_names_the_extra(command: str, extra: str) -> None:
    for args in ([command], [command, "--help"]):
        done = streamrec_without_extras(*args)
        assert done.returncode == 1
        assert f"pip install 'streamrec[{extra}]'" in done.stderr
        assert "Traceback" not in done.stderr


def test_the_command_list_marks_what_is_not_installed() -> None:
    done = streamrec_without_extras("--help")
    assert done.returncode == 0, done.stderr
    listed = {
        line.split()[0]: line for line in done.stdout.splitlines()[1:] if line.startswith("  ")
    }
    assert "not installed" in listed["api"] and "not installed" in listed["evaluate"]
    assert "not installed" not in listed["schemas"]


def test_the_producer_imports_without_the_extras() -> None:
    blocked = ",".join(extra_modules())
    code = _RUN_WITHOUT.split("sys.argv = ")[0] + "from connector.producer import EventProducer\n"
    done = subprocess.run(
        [sys.executable, "-c", code, blocked], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
