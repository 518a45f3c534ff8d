"""The package's imports run one way (docs/architecture.md): faces/ and models/ never import each
other, the leaf modules import no other faceqan module, and module-level imports form no circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import faceqan

PACKAGE = Path(faceqan.__file__).parent
# Modules both halves may use; they import no other faceqan module.
LEAVES = ("faceqan.version", "faceqan.spec", "faceqan.shared_data", "faceqan.errors", "faceqan.extras")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, modules: dict[str, Path], module_level: bool) -> set[str]:
    """faceqan modules that ``name`` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    nodes = tree.body if module_level else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.If) and module_level:  # `if TYPE_CHECKING:` imports never run
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("faceqan")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if not base.startswith("faceqan"):
                continue
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return found & set(modules)


def test_faces_and_models_never_import_each_other():
    modules = _modules()
    for name, path in modules.items():
        imported = _imports(name, path, modules, module_level=False)
        if name.startswith("faceqan.faces"):
            assert not {m for m in imported if m.startswith("faceqan.models")}, name
        if name.startswith("faceqan.models"):
            assert not {m for m in imported if m.startswith("faceqan.faces")}, name


def test_the_leaves_import_no_other_faceqan_module():
    modules = _modules()
    for name in LEAVES:
        assert _imports(name, modules[name], modules, module_level=False) == set(), name


def test_module_level_imports_form_no_circle():
    modules = _modules()
    graph = {name: _imports(name, path, modules, module_level=True) - {name} for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for nxt in sorted(graph[name]):
            assert state.get(nxt) != "open", "import circle: " + " -> ".join([*trail, name, nxt])
            if nxt not in state:
                visit(nxt, [*trail, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_import_faceqan_and_faceqan_on_tensors_load_neither_opencv_nor_scipy():
    code = (
        "import sys, torch, faceqan; from torch import nn; "
        "faceqan.FaceQAN(nn.Sequential(nn.Flatten(), nn.Linear(48, 4)), copies=2, steps=1)(torch.zeros(1, 3, 4, 4)); "
        "print(sorted(m for m in ('cv2', 'scipy', 'skimage') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
