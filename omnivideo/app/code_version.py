"""The version of the code that shapes a stored KV prefix, derived from that code itself.

A stored prefix's bytes come from the video decoding and preprocessing (omnivideo/app/video/), the engine
(omnivideo/engine/) and the kernels (omnivideo/kernels/). A hand-bumped constant drifts from them (it
was not bumped when the fused text rotary changed prefill rounding), so the version is a digest of those
modules' syntax trees instead: any change to a statement is a new version (a cache miss, never a wrong
hit), while comments, docstrings and formatting leave it alone.

    code_version()            # "code-3f9c1a0b2d4e6f81": computed once per process (~0.1 s)
"""
import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
BYTE_SHAPING = ("kernels", "engine", "app/video")


class _StripDocstrings(ast.NodeTransformer):
    def _strip(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_Module = visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip


def source_digest(root: Path, parts=BYTE_SHAPING) -> str:
    """sha256 over (relative path, AST dump without docstrings) of every module under root/part."""
    h = hashlib.sha256()
    for part in parts:
        for path in sorted((root / part).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            tree = _StripDocstrings().visit(ast.parse(path.read_text()))
            h.update(str(path.relative_to(root)).encode() + b"\0")
            h.update(ast.dump(tree, annotate_fields=False).encode() + b"\0")
    return h.hexdigest()


@functools.cache
def code_version() -> str:
    """The kernel/engine/preprocessing version that goes into every cache key."""
    return "code-" + source_digest(PACKAGE)[:16]
