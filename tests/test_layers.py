"""The layering of lib/, read with ast (nothing is imported): who may import whom, no private name used across
packages, and the size limits (docs/architecture.md).

KNOWN lists what today's tree still violates. It may only shrink: a violation not listed fails, and so does a
listed entry that no longer violates (remove it from KNOWN when you fix it)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / "lib"
PACKAGE = "vpclink_runbooks"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
LONG_FUNCTIONS_ALLOWED = {"sandbox/world.py:seed_world"}  # the sandbox's world seed: one long table of data

# The layers below the runner and the CLI: what they may not import (the sandbox is only ever reached through the
# endpoint a session is given).
LOWER_LAYERS = ("steps", "checks", "aws")
NOT_BELOW = ("sandbox", "run", "cli", "sandbox_link")
# Only these check modules talk to AWS; every other check is a pure function of what they read.
CHECKS_THAT_CALL_AWS = {"checks/inventory.py", "checks/probes.py"}
AWS_MODULES = (f"{PACKAGE}.aws", "boto3", "botocore")

# rule -> violations today's tree still has (each must still be a violation: the list only shrinks).
KNOWN: dict[str, set[str]] = {
    "lower_layers": set(),
    "pure_checks": set(),
    "private_names": set(),
    "module_size": set(),
    "function_size": set(),
    "context": set(),
}


@dataclass(frozen=True)
class Module:
    rel: str  # path under lib/, e.g. "steps/inspect.py"
    name: str  # dotted module name, e.g. "vpclink_runbooks.steps.inspect"
    package: str  # the package the module belongs to, e.g. "vpclink_runbooks.steps"
    tree: ast.Module
    lines: int


@cache
def modules() -> tuple[Module, ...]:
    found = []
    for path in sorted(LIB.rglob("*.py")):
        rel = path.relative_to(LIB).as_posix()
        parts = [PACKAGE, *rel[:-3].split("/")]
        if parts[-1] == "__init__":
            parts.pop()
            package = ".".join(parts)
        else:
            package = ".".join(parts[:-1])
        text = path.read_text()
        found.append(Module(rel, ".".join(parts), package, ast.parse(text, rel), len(text.splitlines())))
    return tuple(found)


def is_package(dotted: str) -> bool:
    rel = dotted.removeprefix(PACKAGE).lstrip(".").replace(".", "/")
    return (LIB / rel / "__init__.py").is_file()


def package_of(dotted: str) -> str:
    """The package a dotted name of ours lives in: a package is its own, a module its parent's."""
    return dotted if is_package(dotted) else dotted.rpartition(".")[0]


def absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(module: Module) -> list[tuple[int, str]]:
    """(line, dotted name) of everything the module imports, anywhere in it (functions too): for
    `from a import b` both a and a.b, since b may be a module."""
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            found.append((node.lineno, source))
            found += [(node.lineno, f"{source}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def under(dotted: str, prefix: str) -> bool:
    return dotted == prefix or dotted.startswith(prefix + ".")


def in_layer(module: Module, layers: tuple[str, ...]) -> bool:
    return any(module.rel == f"{layer}.py" or module.rel.startswith(f"{layer}/") for layer in layers)


def check(rule: str, violations: dict[str, str]) -> None:
    """violations: key -> what is wrong. Fails on any unlisted one, and on a listed one that is fixed."""
    new = sorted(set(violations) - KNOWN[rule])
    fixed = sorted(KNOWN[rule] - set(violations))
    problems = [f"{violations[k]}" for k in new] + [f"{k}: fixed, remove it from KNOWN[{rule!r}]" for k in fixed]
    assert not problems, "\n".join(problems)


def test_lib_is_read():
    names = {m.rel for m in modules()}
    assert {"params.py", "context.py", "cli.py", "steps/inspect.py", "checks/__init__.py", "aws/session.py"} <= names


def test_steps_checks_and_aws_never_import_the_sandbox_the_runner_or_the_cli():
    forbidden = [f"{PACKAGE}.{name}" for name in NOT_BELOW]
    violations = {}
    for module in modules():
        if not in_layer(module, LOWER_LAYERS):
            continue
        for line, name in imports(module):
            for bad in forbidden:
                if under(name, bad):
                    violations[f"{module.rel} imports {bad}"] = f"{module.rel}:{line} imports {name}"
    check("lower_layers", violations)


def test_checks_other_than_inventory_and_probes_never_import_aws():
    violations = {}
    for module in modules():
        if not in_layer(module, ("checks",)) or module.rel in CHECKS_THAT_CALL_AWS:
            continue
        for line, name in imports(module):
            for bad in AWS_MODULES:
                if under(name, bad):
                    violations[f"{module.rel} imports {bad}"] = f"{module.rel}:{line} imports {name}"
    check("pure_checks", violations)


def cross_package_private_names(module: Module) -> dict[str, str]:
    """`from X import _y`, and `m._y` on a module m imported from another package than the importer's."""
    found: dict[str, str] = {}
    bound: dict[str, str] = {}  # local name -> one of our modules, imported from another package

    def note(line: int, target: str, private: str) -> None:
        found[f"{module.rel} uses {target}.{private}"] = f"{module.rel}:{line} uses private {target}.{private}"

    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            if not under(source, PACKAGE):
                continue
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if is_package(target) or (LIB / f"{target.removeprefix(PACKAGE + '.').replace('.', '/')}.py").is_file():
                    if package_of(target) != module.package:
                        bound[alias.asname or alias.name] = target
                    if package_of(source) != module.package and alias.name.startswith("_"):
                        note(node.lineno, source, alias.name)
                elif alias.name.startswith("_") and package_of(source) != module.package:
                    note(node.lineno, source, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if under(alias.name, PACKAGE) and alias.asname and package_of(alias.name) != module.package:
                    bound[alias.asname] = alias.name
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            note(node.lineno, bound[node.value.id], node.attr)
    return found


def test_no_private_name_is_used_across_packages():
    violations = {}
    for module in modules():
        violations.update(cross_package_private_names(module))
    check("private_names", violations)


def test_no_module_over_500_lines():
    violations = {f"{m.rel} is too long": f"{m.rel} has {m.lines} lines (at most {MAX_MODULE_LINES})"
                  for m in modules() if m.lines > MAX_MODULE_LINES}
    check("module_size", violations)


def functions(module: Module):
    """(qualified name, lines from `def` to the last line) of every function and method, nested ones too."""
    def walk(node: ast.AST, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                yield name, child.end_lineno - child.lineno + 1
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)
    yield from walk(module.tree, "")


def test_no_function_over_60_lines():
    violations = {}
    for module in modules():
        for name, lines in functions(module):
            key = f"{module.rel}:{name}"
            if lines > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS_ALLOWED:
                violations[key] = f"{key} has {lines} lines (at most {MAX_FUNCTION_LINES})"
    check("function_size", violations)


def test_the_allowed_long_function_exists():
    assert {f"{m.rel}:{name}" for m in modules() for name, _ in functions(m)} >= LONG_FUNCTIONS_ALLOWED


def test_context_has_no_sandbox_import_or_branch():
    module = next(m for m in modules() if m.rel == "context.py")
    violations = {}
    for line, name in imports(module):
        for bad in (f"{PACKAGE}.sandbox", f"{PACKAGE}.sandbox_link"):
            if under(name, bad):
                violations[f"context.py imports {bad}"] = f"context.py:{line} imports {name}"
    for node in ast.walk(module.tree):
        if isinstance(node, (ast.If, ast.IfExp, ast.While)) and "sandbox" in ast.unparse(node.test):
            violations["context.py branches on the sandbox"] = \
                f"context.py:{node.lineno} branches on the sandbox: {ast.unparse(node.test)}"
    check("context", violations)


@pytest.mark.parametrize("source, expected", [
    ("from vpclink_runbooks.checks import _fetch\n", {"x/y.py uses vpclink_runbooks.checks._fetch"}),
    ("from vpclink_runbooks.steps import destroy\ndestroy._load_balancer()\n",
     {"x/y.py uses vpclink_runbooks.steps.destroy._load_balancer"}),
    ("from vpclink_runbooks.x import z\nz._private()\nfrom .z import _ok\n", set()),
    ("from vpclink_runbooks.steps import destroy\ndestroy.public()\ndestroy.__name__\n", set()),
])
def test_the_private_name_rule_itself(source, expected):
    module = Module("x/y.py", f"{PACKAGE}.x.y", f"{PACKAGE}.x", ast.parse(source), 1)
    assert set(cross_package_private_names(module)) == expected
