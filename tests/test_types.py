"""Every public function, method and result type of cvapps carries type hints (read statically)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cvapps"


def unannotated(path: Path) -> list[str]:
    """``"line name: what"`` for each public function or method in ``path`` missing a hint.

    Public: not starting with ``_`` (``__init__`` and ``__call__`` of public classes count);
    ``self``/``cls`` need none; ``__init__`` needs no return hint.
    """
    missing = []

    def visit(body, prefix, in_class):
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                visit(node.body, f"{prefix}{node.name}.", True)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.name.startswith("_") and not (in_class and node.name in ("__init__", "__call__")):
                    continue
                args = node.args
                params = args.posonlyargs + args.args + args.kwonlyargs
                if in_class and params and params[0].arg in ("self", "cls"):
                    params = params[1:]
                bad = [p.arg for p in params if p.annotation is None]
                bad += [f"*{p.arg}" for p in (args.vararg, args.kwarg) if p is not None and p.annotation is None]
                if node.returns is None and node.name != "__init__":
                    bad.append("return")
                if bad:
                    missing.append(f"{node.lineno} {prefix}{node.name}: {', '.join(bad)}")

    visit(ast.parse(path.read_text()).body, "", False)
    return missing


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_every_public_function_has_type_hints(path):
    missing = unannotated(path)
    assert not missing, f"{path.relative_to(PACKAGE.parent)} lacks hints: " + "; ".join(missing)


def test_the_checker_finds_a_missing_hint(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "def f(a: int, b):\n    return a\n\nclass C:\n    def g(self, x: int) -> int:\n        return x\n"
    )
    assert unannotated(source) == ["1 f: b, return"]
