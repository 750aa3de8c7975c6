"""The README documents the project: its file tree lists every module, its quick start two commands."""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import readme_tree  # noqa: E402  (what the tree lists: files git tracks, so a checkout's work in progress is left out)
PACKAGES = ["omnivideo"]


def _tree_paths() -> set[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Files", 1)[1].split("```", 2)[1]
    paths, stack = set(), []
    for line in block.splitlines():
        m = re.match(r"^( *)(\S+)", line)
        if not m or line.strip().startswith("#"):
            continue
        depth, name = len(m.group(1)) // 2, m.group(2)
        stack = stack[:depth] + [name.rstrip("/")]
        paths.add("/".join(stack))
    return paths


def test_readme_tree_lists_every_module():
    listed = _tree_paths()
    modules = {str(p.relative_to(ROOT)) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
               if "__pycache__" not in p.parts and readme_tree.listed(p)}
    # a package's __init__.py is the package's own line in the tree
    wanted = {m[: -len("/__init__.py")] if m.endswith("/__init__.py") else m for m in modules}
    missing = sorted(m for m in wanted | {"launcher.py"} if m not in listed)
    assert not missing, f"README file tree lacks: {missing}"
    stale = sorted(p for p in listed if p.endswith(".py") and not (ROOT / p).exists())
    assert not stale, f"README file tree lists files that do not exist: {stale}"


def test_readme_tree_is_generated_from_the_current_docstrings():
    import subprocess
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_tree.py"), "--check"])
    assert out.returncode == 0, "README tree is stale: run python scripts/readme_tree.py"


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one():
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
