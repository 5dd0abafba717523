"""The trimmed standard library: which modules ship, compiled to sourceless .pyc.

The set is the import closure of init/init and every module of the aether
package, found with the stdlib's ``modulefinder`` run by the image's own
interpreter (the extracted Debian /usr/bin/python3.11), plus STARTUP, the
modules the interpreter imports by itself.  Two refinements keep the closure
honest about what can run:

* a stdlib module's command-line interface, its ``if __name__ ==
  "__main__":`` block and the top-level functions only that block uses, runs
  only when the module is a script (heapq's block imports doctest,
  tokenize.main imports argparse, which pulls in shutil, tarfile, zipfile...),
  so it is not scanned;
* EXCLUDED modules are reached only through lazy or optional imports inside
  the stdlib; they ship only when AetherOS's own code imports them, or a
  module that ships imports them unconditionally (doctest's ``import pdb``).

Modules frozen into the interpreter never read their file, so they do not ship
(except the os landmark).  The same interpreter compiles what ships, with
unchecked-hash invalidation and a fixed hash seed, so the bytes are
reproducible and match the image's Python exactly.
"""

import dataclasses
import json
import subprocess
from pathlib import Path

from .log import BuildError, info, stage

PYTHON = "/usr/bin/python3.11"
STDLIB_DIR = "/usr/lib/python3.11"
DYNLOAD_DIR = f"{STDLIB_DIR}/lib-dynload"
PACKAGE = "aether"

# Imported by the interpreter's C code, which modulefinder cannot see.  Other
# such imports happen only when a feature is used: time.strptime imports
# _strptime, socket calls with str host names the encodings.idna codec.  Add
# them here, with the reason, when AetherOS starts to use those features.
STARTUP = {
    "encodings": "the codec registry's search function, imported at start-up",
    "encodings.aliases": "imported by encodings to normalise codec names",
    "encodings.utf_8": "filesystem and stdio encoding (the image has no locales: "
                       "the C locale turns on UTF-8 mode)",
    "encodings.ascii": "looked up by name when a text stream says encoding='ascii' "
                       "(io asks the codec registry); 2.5 KB",
    "encodings.latin_1": "likewise for encoding='latin-1'; 2.5 KB",
    "os": "getpath's landmark: it finds the prefix by lib/python3.11/os.py(c); "
          "frozen, so only its file is needed",
    "runpy": "python3.11 -m aether.console runs through runpy (frozen; its "
             "imports of importlib and pkgutil are not)",
}

# Frozen, yet their file must exist.
LANDMARKS = {"os"}

# importlib/__init__ installs the frozen _frozen_importlib(_external) under these
# names; the files are only a fallback that never runs.
FROZEN_ALIASES = {"importlib._bootstrap", "importlib._bootstrap_external"}

# Reached only through lazy or optional imports inside the stdlib.  They ship
# only if AetherOS's own code imports them, or a module that ships imports them
# at its top level, unconditionally.
EXCLUDED = {
    # Test, debug and documentation tools, imported inside functions of
    # modules that may be needed (multiprocessing.util -> test.support,
    # doctest -> pdb -> pydoc).
    "test": "CPython's test suite",
    "unittest": "test framework",
    "doctest": "test framework",
    "pdb": "debugger (breakpoint() is not used in the image)",
    "bdb": "debugger base",
    "pydoc": "interactive help()",
    "pydoc_data": "help() topics, 750 KB",
    "profile": "profiler", "cProfile": "profiler", "pstats": "profiler",
    "trace": "coverage tracer", "timeit": "benchmark helper",
    "idlelib": "IDE", "tkinter": "GUI", "turtle": "GUI", "turtledemo": "GUI",
    "lib2to3": "2to3 converter", "ensurepip": "pip bootstrap", "venv": "virtual envs",
    "distutils": "package building",
    "__phello__": "freezing test package", "__hello__": "freezing test module",
    # Other platforms, imported under sys.platform / os.name checks.
    "_osx_support": "macOS", "_aix_support": "AIX", "ctypes._aix": "AIX",
    "ctypes.macholib": "macOS", "nturl2path": "Windows", "encodings.mbcs": "Windows",
    "encodings.oem": "Windows", "asyncio.windows_events": "Windows",
    "asyncio.windows_utils": "Windows", "multiprocessing.popen_spawn_win32": "Windows",
    # Pure-Python fallbacks of accelerators the image's interpreter has.
    "_pydecimal": "fallback of _decimal", "_py_abc": "fallback of the built-in _abc",
    "_pyio": "fallback of the built-in _io",
    # Optional accelerators whose libraries the image does not carry.
    "_hashlib": "OpenSSL (libcrypto.so.3: 4.7 MB); hashlib falls back to the built-in "
                "_sha256/_sha512/_blake2/_md5/_sha1/_sha3",
    # Package metadata and resources: reached lazily from the frozen import
    # system; the image has no installed distributions.
    "importlib.metadata": "distribution metadata",
    "importlib.resources": "package resources API",
    "importlib.readers": "package resources API",
}

# Bytecode optimisation of the shipped stdlib: 2 drops docstrings and asserts,
# 15% fewer bytes for the kernel to unpack at every boot; nothing in the
# shipped closure reads a stdlib docstring.  The aether package keeps level 0
# (its docstrings may be help text, and the interpreter runs without -O).
STDLIB_OPTIMIZE = 2
PACKAGE_OPTIMIZE = 0

# Run by the image's interpreter: the import closure, as JSON on stdout.
_PROBE = r'''
import _imp, ast, json, modulefinder, sys

req = json.load(sys.stdin)
PKG = req["package"]


def own(name):
    return name == "__main__" or name == PKG or name.startswith(PKG + ".")


def main_guard(node):
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def names(nodes, skip=None):
    """Identifiers and string constants (think __all__) used in ``nodes``."""
    found = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id != skip:
                found.add(sub.id)
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                found.add(sub.value)
    return found


def library_part(body):
    """A module's statements minus its command-line interface: the __main__ block
    and the top-level functions only that block uses (tokenize.main, ...)."""
    guards = [n for n in body if main_guard(n)]
    rest = [n for n in body if not main_guard(n)]
    entry = names(guards)
    funcs = (ast.FunctionDef, ast.AsyncFunctionDef)
    used = set()
    for node in rest:
        used |= names([node], skip=node.name if isinstance(node, funcs) else None)
    return [n for n in rest if not (isinstance(n, funcs) and n.name in entry - used)]


def hard_imports(body, fqname, is_package):
    """Absolute names a module imports unconditionally: plain import statements
    of its top level, outside any try, if or function."""
    package = fqname if is_package else fqname.rpartition(".")[0]
    found = set()
    for node in body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)
    return found


class Finder(modulefinder.ModuleFinder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hard = {}

    def load_module(self, fqname, fp, pathname, file_info):
        if file_info[2] != modulefinder._PY_SOURCE or own(fqname):
            return super().load_module(fqname, fp, pathname, file_info)
        tree = ast.parse(fp.read(), pathname)
        tree.body = library_part(tree.body)
        is_package = pathname.endswith("/__init__.py")
        self.hard[fqname] = hard_imports(tree.body, fqname, is_package)
        code = compile(tree, pathname, "exec")
        module = self.add_module(fqname)
        module.__file__ = pathname
        module.__code__ = code
        self.scan_code(code, module)
        return module


def excluded(name, excludes):
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        if ".".join(parts[:i]) in excludes:
            return ".".join(parts[:i])
    return None


def run(excludes):
    finder = Finder(path=req["path"], excludes=sorted(excludes))
    finder.run_script(req["script"])
    for name in req["roots"]:
        finder.import_hook(name)
    return finder


def wanted(finder, excludes):
    """Excluded modules that must ship after all: imported by AetherOS's own
    code, or unconditionally by a module that ships."""
    names = set()
    for name, callers in finder.badmodules.items():
        hit = excluded(name, excludes)
        if hit and any(own(c) for c in callers):
            names.add(hit)
    for module, imports in finder.hard.items():
        if module in finder.modules:
            names.update(filter(None, (excluded(n, excludes) for n in imports)))
    return names


def syntax_errors(files):
    """modulefinder files a module that does not compile as missing: say why instead."""
    errors = []
    for path in files:
        try:
            with open(path, "rb") as f:
                compile(f.read(), path, "exec")
        except SyntaxError as e:
            errors.append(f"{e.filename}:{e.lineno}: {e.msg}")
    return errors


errors = syntax_errors(req["own_files"])
if errors:
    json.dump({"errors": errors}, sys.stdout)
    sys.exit(0)
excludes = set(req["excludes"])
while True:
    finder = run(excludes)
    needed = wanted(finder, excludes)
    if not needed:
        break
    excludes -= needed

missing, _ = finder.any_missing_maybe()
json.dump({
    "modules": {name: {"file": m.__file__, "frozen": _imp.is_frozen(name)}
                for name, m in finder.modules.items()},
    "missing": sorted(n for n in missing if not excluded(n, excludes)
                      and any(own(c) for c in finder.badmodules[n])),
    "included": sorted(set(req["excludes"]) - excludes),
}, sys.stdout)
'''

# Run by the image's interpreter: compile [source, pyc, name in tracebacks, level].
_COMPILE = r'''
import json, py_compile, sys
for src, cfile, dfile, optimize in json.load(sys.stdin):
    py_compile.compile(src, cfile=cfile, dfile=dfile, doraise=True, optimize=optimize,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
'''


@dataclasses.dataclass(frozen=True)
class Selection:
    """The stdlib modules that ship: image paths of their .py and .so files."""

    sources: tuple
    extensions: tuple
    included: tuple   # EXCLUDED modules AetherOS imports itself
    missing: tuple    # imports of AetherOS's code found nowhere

    @property
    def count(self):
        return len(self.sources) + len(self.extensions)


def run_python(root, script, payload):
    """Run ``script`` with the image's interpreter from the staging ``root``."""
    python = root / PYTHON.lstrip("/")
    # Not -I: it would ignore PYTHONHASHSEED, and set and frozenset constants
    # are marshalled in hash order.  -S -s -P and an empty environment instead.
    proc = subprocess.run([str(python), "-S", "-s", "-P", "-c", script],
                          input=json.dumps(payload), capture_output=True, text=True,
                          env={"PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        raise BuildError(f"the image's python3.11 failed:\n{proc.stderr.strip()}",
                         hint=f"the build runs {python} on this host, which needs a "
                              "Debian 12 (glibc 2.36) x86_64 host; run it by hand to see why")
    return proc.stdout


def package_files(package_dir):
    """The package's .py files, sorted, without __pycache__.

    Every directory holding modules must be a regular package (an
    ``__init__.py``): modulefinder cannot follow namespace packages.
    """
    files = [p for p in sorted(package_dir.rglob("*.py")) if "__pycache__" not in p.parts]
    for directory in sorted({p.parent for p in files}):
        if not (directory / "__init__.py").exists():
            raise BuildError(f"{directory} holds Python modules but has no __init__.py",
                             hint=f"add {directory / '__init__.py'} (a docstring saying what the "
                                  "package is for is enough)")
    return files


def package_modules(package_dir):
    """Dotted names of every module of the package at ``package_dir``."""
    names = []
    for path in package_files(package_dir):
        parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def _probe(root, repo, script):
    stdlib = root / STDLIB_DIR.lstrip("/")
    payload = {
        "package": PACKAGE,
        # The stdlib first, as in the image; the repository only provides aether.
        "path": [str(stdlib), str(stdlib / "lib-dynload"), str(repo)],
        "script": str(script),
        "own_files": [str(script), *map(str, package_files(repo / PACKAGE))],
        "roots": sorted(STARTUP) + package_modules(repo / PACKAGE),
        "excludes": sorted(EXCLUDED),
    }
    result = json.loads(run_python(root, _PROBE, payload))
    if "errors" in result:
        raise BuildError("syntax error in AetherOS code:\n  " + "\n  ".join(result["errors"]),
                         hint="the image's Python 3.11.2 must compile every module")
    return result


def _ships(name, module):
    if name in FROZEN_ALIASES:
        return False
    return not module["frozen"] or name in LANDMARKS


def select(root, repo, script):
    """The closure of ``script`` (init/init) and the aether package, as a Selection."""
    root = Path(root).resolve()  # modulefinder reports absolute paths
    with stage("find the stdlib import closure (modulefinder, image python)"):
        result = _probe(root, repo, script)
        stdlib = str(root / STDLIB_DIR.lstrip("/"))
        files = sorted(m["file"] for name, m in result["modules"].items()
                       if m["file"] and m["file"].startswith(stdlib + "/") and _ships(name, m))
        image = ["/" + str(Path(f).relative_to(root)) for f in files]
        selection = Selection(
            sources=tuple(f for f in image if f.endswith(".py")),
            extensions=tuple(f for f in image if f.endswith(".so")),
            included=tuple(result["included"]),
            missing=tuple(result["missing"]))
    if selection.included:
        info(f"shipping excluded modules that {PACKAGE} imports: {', '.join(selection.included)}")
    if selection.missing:
        info(f"warning: {PACKAGE} imports modules found nowhere: {', '.join(selection.missing)}")
    return selection


def pyc_path(source):
    """Legacy sourceless location: json/decoder.py -> json/decoder.pyc."""
    return source[:-len(".py")] + ".pyc"


def compile_files(root, jobs):
    """Compile [(source host path, pyc host path, image path, level)] with the image's python."""
    run_python(root, _COMPILE, [[str(s), str(c), d, o] for s, c, d, o in jobs])


def install(selection, root, tree):
    """Compile the selected sources into ``tree`` as legacy .pyc files.

    The extension modules are copied with the shared libraries they need
    (rootfs and elfdeps); lib-dynload exists even if none ships, as getpath's
    landmark for exec_prefix.
    """
    with stage(f"compile {len(selection.sources)} stdlib modules to .pyc "
               f"(unchecked-hash, optimize={STDLIB_OPTIMIZE})"):
        jobs = [(root / src.lstrip("/"), tree / pyc_path(src).lstrip("/"), src, STDLIB_OPTIMIZE)
                for src in selection.sources]
        compile_files(root, jobs)
        (tree / DYNLOAD_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
    pyc_bytes = sum(job[1].stat().st_size for job in jobs)
    so_bytes = sum((root / so.lstrip("/")).stat().st_size for so in selection.extensions)
    so_names = ", ".join(Path(so).name.split(".")[0] for so in selection.extensions)
    info(f"stdlib: {selection.count} modules ship: {len(selection.sources)} .pyc, "
         f"{pyc_bytes:,} bytes; {len(selection.extensions)} extension modules, "
         f"{so_bytes:,} bytes ({so_names or 'none'})")


def install_package(root, package_dir, tree):
    """The aether package: .py sources plus __pycache__/*.cpython-311.pyc (unchecked-hash)."""
    dest = tree / STDLIB_DIR.lstrip("/") / package_dir.name
    jobs = []
    for src in package_files(package_dir):
        rel = src.relative_to(package_dir)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(src.read_bytes())
        cache = target.parent / "__pycache__" / f"{src.stem}.cpython-311.pyc"
        jobs.append((src, cache, f"{STDLIB_DIR}/{package_dir.name}/{rel}", PACKAGE_OPTIMIZE))
    with stage(f"compile the {package_dir.name} package ({len(jobs)} modules)"):
        compile_files(root, jobs)
