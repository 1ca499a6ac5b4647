"""Imports point one way (docs/architecture.md): every module's imports, read with `ast`, lazy
ones inside functions and `TYPE_CHECKING` ones included, go only to a lower layer.

Packages of one layer do not import each other either: a layer is a set of independent
concepts, so a cycle cannot hide inside one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import imagehub

SRC = Path(imagehub.__file__).parent

#: bottom → top; a package (or top-level module) of imagehub imports only from layers below
LAYERS: list[set[str]] = [
    {"schemas", "settings"},  # the HTTP shapes; the one reader of the environment
    # one tree of errors (names `schemas.TaskOut` for typing only); spans; shared readings
    {"errors", "tracing", "flight"},
    {"tasks", "catalog", "imaging", "client", "logs"},  # the domain; image bytes; the SDK; logs
    # the domain values of keys and deliveries (see TYPES); estimates of tasks from the journal
    {"tenancy.types", "webhooks.types", "estimates"},
    {"imagework"},  # image work in worker processes, for providers, media and the worker
    {"store", "media", "providers", "render", "wakeups", "metrics"},  # behind protocols
    {"routing", "outbound", "tenancy"},  # routes over providers; outbound HTTP; keys and limits
    {"webhooks"},  # signed deliveries, written with a task's finish
    {"worker"},  # claim → route → provider → media → finish
    {"hub", "admin"},  # the façade; the operator's view across tenants
    {"wiring"},  # the one place a hub is put together (`build_hub`)
    {"api"},  # the HTTP border
    {"cli", "testing"},  # entry points; fakes for users' tests
]

#: stricter than its layer: the SDK installs without the server's dependencies
ONLY: dict[str, set[str]] = {"client": {"schemas", "errors"}}

#: imports that go up or sideways today, each with why it is still there; the test also fails
#: when one of them is gone, so that this set only shrinks
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def layer_of(name: str) -> int:
    for number, layer in enumerate(LAYERS):
        if name in layer:
            return number
    raise AssertionError(f"imagehub.{name} is in no layer: add it to LAYERS (and the docs)")


def module_name(path: Path) -> str:
    parts = ["imagehub", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(module: str, path: Path) -> Iterator[str]:
    """Every imagehub module this file imports, wherever the import statement stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this file's package
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *filter(None, [base])])
            if base == "imagehub" or not node.module:
                # `from imagehub import x`, `from . import x`: x is a module of that package
                yield from (f"{base}.{alias.name}" for alias in node.names)
            else:
                yield base


#: a package's plain values, which the store keeps, sit below the store: their own unit
TYPES = {"imagehub.tenancy.types", "imagehub.webhooks.types"}


def unit(module: str) -> str:
    """The package or top-level module of imagehub that a module belongs to (a package's
    `types` module counts on its own)."""
    if module in TYPES:
        return module.removeprefix("imagehub.")
    return module.split(".")[1]


def crossings() -> Iterator[tuple[str, str, str]]:
    """(module, imported module, what is wrong) for every import not going strictly down."""
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        if module == "imagehub":
            continue
        source = unit(module)
        for target in imported(module, path):
            if not target.startswith("imagehub.") or unit(target) == source:
                continue
            dest = unit(target)
            if source in ONLY and dest not in ONLY[source]:
                yield module, target, f"{source} imports only {sorted(ONLY[source])}"
            elif layer_of(dest) >= layer_of(source):
                yield module, target, f"layer {layer_of(source)} imports layer {layer_of(dest)}"


def test_every_import_goes_down_a_layer():
    found = {(module, target): why for module, target, why in crossings()}
    new = {pair: why for pair, why in found.items() if pair not in KNOWN_UPWARD}
    assert not new, "imports going up or sideways (see docs/architecture.md):\n" + "\n".join(
        f"  {module} -> {target}: {why}" for (module, target), why in sorted(new.items())
    )


def test_the_known_upward_imports_are_still_there():
    """When one is fixed, its entry goes: the list of exceptions only shrinks."""
    found = {(module, target) for module, target, _ in crossings()}
    assert set(KNOWN_UPWARD) <= found, (
        f"fixed, remove from KNOWN_UPWARD: {set(KNOWN_UPWARD) - found}"
    )


def test_every_package_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if not p.name.startswith("_")}
    names = {n for n in names if (SRC / n).is_dir() or (SRC / f"{n}.py").is_file()}
    assert names | {t.removeprefix("imagehub.") for t in TYPES} == set().union(*LAYERS)


def test_the_import_reader_sees_every_form(tmp_path):
    """The reader itself: top-level, lazy, TYPE_CHECKING, relative and `from imagehub import`."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = package / "mod.py"
    source.write_text(
        "from __future__ import annotations\n"
        "import imagehub.tasks\n"
        "from imagehub import hub\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from imagehub.schemas import TaskOut\n"
        "def late():\n    from imagehub.api.deps import get_caller\n"
        "from .sibling import x\n"
        "from . import other\n"
    )
    found = set(imported("imagehub.pkg.mod", source))
    assert {
        "imagehub.tasks",
        "imagehub.hub",
        "imagehub.schemas",
        "imagehub.api.deps",
        "imagehub.pkg.sibling",
        "imagehub.pkg.other",
    } <= found
