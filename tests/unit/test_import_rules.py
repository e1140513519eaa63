"""Which package may import which (docs/architecture.md, Tree and Worker).

Five rules are import-linter contracts in pyproject.toml ([tool.importlinter]), run here one
by one so a failure names its rule and the offending imports:

- connector never imports worker (the connector deploys without it);
- worker's subpackages import only downward: cli -> demo, report -> training -> evaluation
  -> data -> settings, exceptions, health (demo and report never import each other);
- connector's rooms import only downward: cli -> app, api, demo, bulk_import, producer ->
  wiring -> ingest -> serving -> filters -> stores, registry, trackers -> model;
- no import cycle between worker's subpackages, nor between connector's subpackages and
  top-level modules.

The sixth, that no module uses a private name (leading underscore) of another subpackage,
is about names, which import-linter's module graph does not record, so it is checked here
over the source with ast. A private name belongs to the subpackage it is defined in
(connector.stores, worker.data; a module directly under a top-level package, such as
connector/keys.py, is its own), and only modules inside that subpackage may use it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("connector", "worker", "schemas")
CONTRACTS = (
    "connector-never-imports-worker",
    "worker-layers",
    "worker-acyclic",
    "connector-layers",
    "connector-acyclic",
)
# import-linter's entry point, without its logo; exit status 0 when every contract is kept.
LINT = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(config_filename='pyproject.toml', limit_to_contracts=(sys.argv[1],),"
    " no_cache=True, no_logo=True))"
)


def test_the_contracts_are_configured() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert sorted(config["root_packages"]) == sorted(PACKAGES)
    assert sorted(contract["id"] for contract in config["contracts"]) == sorted(CONTRACTS)


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -c code args` in a fresh interpreter that imports this checkout."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("contract", CONTRACTS)
def test_import_linter_contract_is_kept(contract: str) -> None:
    result = _python(LINT, contract)
    assert result.returncode == 0, f"{contract} is broken:\n{result.stdout}{result.stderr}"


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _owner(dotted: str) -> str | None:
    """The subpackage a private name in `dotted` belongs to (None when nothing in it is
    private): the module or package that defines the first private part, cut to two parts."""
    parts = dotted.split(".")
    first = next((i for i, part in enumerate(parts) if _is_private(part)), None)
    if first is None:
        return None
    return ".".join(parts[: min(first, 2)])


def private_uses(module: str, source: str, is_package: bool = False) -> Iterator[str]:
    """Each use of another subpackage's private name in `source`, the code of `module`:
    imported (`from a.b import _c`, `import a._b`) or reached through an imported name
    (`b._c` after `from a import b`)."""
    home = module.split(".")[:2]
    tree = ast.parse(source)
    bound: dict[str, str] = {}  # local name -> the dotted name it was imported as
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: None if is_package else -1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            if base.split(".")[0] in PACKAGES:
                for alias in node.names:
                    bound[alias.asname or alias.name] = f"{base}.{alias.name}"
                    found.append((node.lineno, f"{base}.{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else local
                    found.append((node.lineno, alias.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                found.append((node.lineno, ".".join([bound[value.id], *reversed(chain)])))
    for line, dotted in sorted(set(found)):
        owner = _owner(dotted)
        if owner is not None and owner.split(".") != home[: len(owner.split("."))]:
            yield f"{module} (line {line}) uses {dotted}, private to {owner}"


def test_no_module_uses_another_subpackages_private_names() -> None:
    offending = [
        use
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for use in private_uses(_module(path), path.read_text(), path.name == "__init__.py")
    ]
    assert not offending, "private names used outside their subpackage:\n" + "\n".join(offending)


@pytest.mark.parametrize(
    ("module", "source", "offends"),
    [
        ("worker.data.rebuild", "from connector.ingest.plan import _member", True),
        ("connector.ingest.plan", "from connector.stores.lists import _key", True),
        ("connector.ingest.plan", "from connector.stores import _lists", True),
        ("connector.wiring", "from connector.keys import _prefix", True),
        ("worker.cli.train", "from connector import _state", True),
        ("worker.cli.train", "import connector.stores._lua", True),
        ("worker.cli.train", "from connector.stores import lists\nlists._key('a')", True),
        ("worker.cli.train", "import connector.stores.lists\nconnector.stores.lists._key()", True),
        ("worker.cli.train", "from ..data import _cache", True),
        ("connector.stores.lists", "from connector.stores.model_layout import _parts", False),
        ("connector.stores.lists", "from . import _parts", False),
        ("connector.app", "from connector import _state", False),
        ("connector.keys", "from connector.keys import _prefix", False),
        ("worker.cli.train", "from connector.keys import Keys\nimport click._termui_impl", False),
        ("worker.cli.train", "from connector import __version__", False),
    ],
)
def test_the_private_name_rule(module: str, source: str, offends: bool) -> None:
    assert bool(list(private_uses(module, source))) is offends


def test_the_producer_loads_no_serving_or_training_library() -> None:
    """A producer application imports EventProducer alone: it must not pull in what only
    the connector, the API or the worker need."""
    heavy = ("faust", "faiss", "matplotlib", "scipy", "numpy", "redis", "aiohttp")
    code = (
        "import sys; from connector.producer import EventProducer; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"EventProducer loads {result.stdout.strip()}"
