"""Regenerate the annotated file tree in README.md from the modules' own docstrings.

    python scripts/readme_tree.py          # rewrites the block between the tree markers
    python scripts/readme_tree.py --check  # exit 1 if the README is out of date

Each module is annotated with the first line of its docstring, so the tree says what the code says.
"""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = [
    ("launcher.py", None),
    ("pyproject.toml", "dependencies as open ranges (CPU, GPU and the newest releases); pytest markers"),
    ("requirements-cpu.lock", "the exact CPU stack `make demo` / `make test` install (scripts/lock.sh writes it)"),
    ("constraints-cpu.txt", "pins the CPU build of torch so CPU installs never pull CUDA wheels"),
    ("Makefile", "the two quick-start commands: make demo, make test"),
    ("scripts/bootstrap.sh", "idempotent setup: .venv, dependencies, (with --test) ffmpeg + chromium"),
    ("scripts/lock.sh", "regenerates requirements-cpu.lock in a fresh venv"),
    ("scripts/gpu_check.sh", "one GPU-box call: GPU tests, tiny model in NF4, benchmarks"),
    ("scripts/readme_tree.py", None),
    (".ci/run", "CI entry point: `make test` on a clean clone"),
]
PACKAGES = ["omnivideo"]
TAIL = [
    ("tests/", "mirrors omnivideo/ (engine/, kernels/, storage/, ui/, video/, bench/, ...); conftest.py: fixtures"),
    ("docs/", "design notes per subsystem; benchmark reports (JSON + report.md + plot) under docs/benchmarks/"),
]
BEGIN, END = "<!-- tree:begin -->", "<!-- tree:end -->"
WIDTH = 34


def summary(path: Path) -> str:
    doc = (ast.get_docstring(ast.parse(path.read_text())) or "").strip()
    if not doc:
        return "(no docstring)"
    first = " ".join(doc.split("\n\n")[0].split())   # the first paragraph, on one line
    return first.split(". ")[0].rstrip(".")


def line(name: str, depth: int, note: str) -> str:
    text = "  " * depth + name
    return f"{text:<{WIDTH}}# {note}"


def tree() -> str:
    out = [line(name, 0, note or summary(ROOT / name)) for name, note in TOP]
    for pkg in PACKAGES:
        out.append(line(pkg + "/", 0, summary(ROOT / pkg / "__init__.py")))
        out += _walk(ROOT / pkg, 1)
    out += [line(name, 0, note) for name, note in TAIL]
    return "\n".join(out)


def _tracked() -> set[Path] | None:
    """Files git tracks (a checkout's untracked work in progress stays out of the tree); None outside git."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {ROOT / name for name in out.splitlines()}


TRACKED = _tracked()


def listed(path: Path) -> bool:
    return TRACKED is None or path in TRACKED


def _walk(folder: Path, depth: int) -> list[str]:
    rows = []
    for f in sorted(p for p in folder.glob("*.py") if p.name != "__init__.py" and listed(p)):
        rows.append(line(f.name, depth, summary(f)))
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and listed(p / "__init__.py")):
        rows.append(line(sub.name + "/", depth, summary(sub / "__init__.py")))
        rows += _walk(sub, depth + 1)
    return rows


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n```\n{tree()}\n```\n{END}{tail}"
    if "--check" in sys.argv:
        return 0 if new == text else 1
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
