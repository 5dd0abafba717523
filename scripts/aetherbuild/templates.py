"""The rootfs/ overlay's templates (``name.j2`` -> ``name``), rendered with jinja2.

Used by the image build (rootfs.py) and, through scripts/render-templates, by
the Buildroot tree's post-build.sh: both render the same files with the same
context (``version`` from aether/__init__.py, ``build_id``).  Needs jinja2
only, so Buildroot's host Python can run it.
"""

import ast
import shutil
from pathlib import Path

import jinja2

from .log import BuildError

PACKAGE = "aether"
SUFFIX = ".j2"


def aether_version(repo):
    """``__version__`` of aether/__init__.py, read without importing the package."""
    path = Path(repo) / PACKAGE / "__init__.py"
    for node in ast.parse(path.read_text(), str(path)).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "__version__"
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    raise BuildError(f"{path} has no __version__ = \"x.y.z\" line",
                     hint="add one: the image's /etc/os-release takes VERSION_ID from it")


def render(template, context):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    try:
        return env.from_string(template).render(context)
    except jinja2.TemplateError as e:
        raise BuildError(f"template error: {e}") from e


def render_file(src, dest, context, label=None):
    """Render the template ``src`` into ``dest`` with ``src``'s permission bits."""
    try:
        text = render(Path(src).read_text(), context)
    except BuildError as e:
        raise BuildError(f"{label or src}: {e}") from e
    Path(dest).write_text(text)
    shutil.copymode(src, dest)


def render_tree(tree, context):
    """Render every ``*.j2`` under ``tree`` in place (the template is removed); return them."""
    done = []
    for src in sorted(Path(tree).rglob(f"*{SUFFIX}")):
        if src.is_file() and not src.is_symlink():
            render_file(src, src.with_suffix(""), context)
            src.unlink()
            done.append(src.with_suffix(""))
    return done
