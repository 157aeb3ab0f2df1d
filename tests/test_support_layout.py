"""Who may import whom between the tests, their shared helpers and the benchmarks: the benchmarks
take what they share with the tests from ``tests.support``, never the reverse, and the helpers
never reach into a test module (every import counts, those inside functions too, read with
``ast``, not run). And Chromium is launched in one place."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT


def imported(path: Path, root: Path = ROOT) -> set[str]:
    """Every module a file imports, relative imports resolved."""
    package = ".".join(path.relative_to(root).parent.parts)
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            out.add(module)
            out |= {f"{module}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return out


def offenders(folder: str, allowed, root: Path = ROOT) -> dict[str, list[str]]:
    """The files below ``folder`` that import a module ``allowed`` refuses, with those modules."""
    found = {}
    for path in sorted((root / folder).rglob("*.py")):
        bad = sorted(m for m in imported(path, root) if not allowed(m))
        if bad:
            found[str(path.relative_to(root))] = bad
    return found


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_nothing_under_tests_imports_the_benchmarks():
    assert offenders("tests", lambda m: not under(m, "bench")) == {}


def test_the_benchmarks_take_from_tests_only_its_support_package():
    assert offenders("bench", lambda m: not under(m, "tests") or under(m, "tests.support")) == {}


def test_the_shared_helpers_never_reach_into_a_test_module():
    assert offenders("tests/support", lambda m: not under(m, "tests") or under(m, "tests.support")) == {}


def test_the_checks_see_an_import_in_a_function(tmp_path):
    """The walk finds late imports and resolves relative ones (else the tests above pass for nothing)."""
    pkg = tmp_path / "tests" / "faults"
    pkg.mkdir(parents=True)
    (pkg / "probe.py").write_text("def f():\n    from bench import figures\n    from ..support import procs\n")
    assert offenders("tests", lambda m: not under(m, "bench"), tmp_path) == {
        "tests/faults/probe.py": ["bench", "bench.figures"]}
    assert "tests.support.procs" in imported(pkg / "probe.py", tmp_path)


def test_chromium_is_launched_in_one_place():
    """Every test and benchmark gets its browser from tests.support.browser.launch (Debian's
    chromium, the same flags), never a launch of its own."""
    words = ("launch_persistent_context", "executable_path", ".chromium.launch(")
    elsewhere = [path for folder in ("tests", "bench") for path in sorted((ROOT / folder).rglob("*.py"))
                 if path.name != "test_support_layout.py" and path != ROOT / "tests" / "support" / "browser.py"]
    assert [str(p.relative_to(ROOT)) for p in elsewhere if any(w in p.read_text(encoding="utf-8") for w in words)] == []
