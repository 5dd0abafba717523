"""The kernel: Debian's linux-source, tinyconfig plus kernel-config/*.config.

The result is cached outside the work tree under a key made of the source
package version and the fragments' contents, so it is rebuilt only when one of
them changes.  Every symbol a fragment sets is checked after olddefconfig: a
symbol Kconfig silently dropped (a missing dependency) fails the build.
"""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from . import hosttools, paths
from .log import BuildError, info, stage

# Bump when the recipe below changes in a way that changes the output.
RECIPE = "3"
SOURCE_PACKAGE = "linux-source-6.1"
SYMBOL = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def fragments():
    frags = sorted((paths.REPO / "kernel-config").glob("*.config"))
    if not frags:
        raise BuildError("no kernel config fragments in kernel-config/")
    return frags


def parse_config(text):
    """Map symbol -> value ('n' for '# CONFIG_X is not set')."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if m := SYMBOL.match(line):
            values[m.group(1)] = m.group(2)
        elif m := UNSET.match(line):
            values[m.group(1)] = "n"
    return values


def source():
    """(tarball path, package version) of the installed linux-source."""
    try:
        version = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", SOURCE_PACKAGE],
            check=True, capture_output=True, text=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        version = ""
    tarball = Path(f"/usr/src/{SOURCE_PACKAGE}.tar.xz")
    if not version or not tarball.exists():
        raise BuildError(f"Debian's {SOURCE_PACKAGE} is not installed",
                         hint=f"apt-get install {SOURCE_PACKAGE}  (or run: make deps)")
    return tarball, version


def cache_key(version):
    h = hashlib.sha256(f"recipe={RECIPE}\nsource={SOURCE_PACKAGE} {version}\n".encode())
    for frag in fragments():
        h.update(frag.name.encode() + b"\0" + frag.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def check_symbols(config_text):
    """Every symbol the fragments set must survive olddefconfig unchanged."""
    got = parse_config(config_text)
    wrong = []
    for frag in fragments():
        for sym, want in parse_config(frag.read_text()).items():
            have = got.get(sym, "n")
            if have != want:
                wrong.append(f"{frag.name}: {sym}={want} but the config has {sym}={have}")
    if wrong:
        raise BuildError("kernel config fragments were not applied:\n  " + "\n  ".join(wrong),
                         hint="a dependency of the symbol is missing; add it to the fragment")


def _run(cmd, log_path, env=None):
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(map(str, cmd))}\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        tail = Path(log_path).read_text(errors="replace").splitlines()[-25:]
        raise BuildError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                         + "\n".join("    " + t for t in tail),
                         hint=f"full log: {log_path}")


def _extract(tarball, version, root):
    src = root / f"src-{version}"
    marker = src / ".aether-extracted"
    if marker.exists():
        return src / SOURCE_PACKAGE
    with stage(f"extract {tarball.name} ({version})"):
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(src)], check=True)
        marker.touch()
    return src / SOURCE_PACKAGE


def _env(tarball):
    return dict(os.environ,
                ARCH="x86_64",
                # Timestamps come from the source package, not the clock: reproducible.
                KBUILD_BUILD_TIMESTAMP=_source_date(tarball),
                KBUILD_BUILD_USER="aether", KBUILD_BUILD_HOST="aetheros",
                KBUILD_BUILD_VERSION="1")


def _compile(srctree, build_dir, log, env, key):
    """tinyconfig + the fragments in ``build_dir``, checked, then bzImage."""
    make = ["make", "-C", str(srctree), f"O={build_dir}", "ARCH=x86_64"]
    with stage(f"configure kernel [{key}] (tinyconfig + {len(fragments())} fragments)"):
        _run(make + ["tinyconfig"], log, env)
        _run([str(srctree / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(build_dir),
              str(build_dir / ".config"), *map(str, fragments())], log, env)
        _run(make + ["olddefconfig"], log, env)
        check_symbols((build_dir / ".config").read_text())
    with stage(f"compile kernel with {os.cpu_count()} jobs (log: {log})"):
        _run(make + [f"-j{os.cpu_count()}", "bzImage"], log, env)
    return build_dir / "arch/x86/boot/bzImage"


def build():
    """Return the path of a cached bzImage for the current fragments, building it if needed.

    Two builds at once (two checkouts, or a test beside ``make``) share one object tree,
    so the build holds a lock on the cache: the second waits, then finds the first's
    kernel in the cache when the keys agree.
    """
    hosttools.require("dpkg-query", "make", "gcc", "bc", "bison", "flex", "tar", "xz")
    tarball, version = source()
    root = paths.cache_dir() / "kernel"
    root.mkdir(parents=True, exist_ok=True)
    key = cache_key(version)
    done = root / key
    with open(root / "build.lock", "w") as lock:
        if (done / "bzImage").exists():
            info(f"kernel {version} [{key}] from cache")
            return done
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info("another kernel build holds the cache; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (done / "bzImage").exists():
            info(f"kernel {version} [{key}] from cache")
            return done
        return _build(tarball, version, root, key, done)


def _build(tarball, version, root, key, done):
    srctree = _extract(tarball, version, root)
    # One object tree per source version: a fragment change rebuilds incrementally.
    build_dir = root / f"build-{version}"
    build_dir.mkdir(parents=True, exist_ok=True)
    log = root / f"build-{key}.log"
    log.unlink(missing_ok=True)
    bzimage = _compile(srctree, build_dir, log, _env(tarball), key)
    tmp = root / f"{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    shutil.copy2(bzimage, tmp / "bzImage")
    shutil.copy2(build_dir / ".config", tmp / "config")
    (tmp / "version").write_text(f"{SOURCE_PACKAGE} {version}\n")
    tmp.rename(done)
    return done


def clean_build(work):
    """Build the same kernel again from scratch in ``work`` (an empty object tree, another
    path); return its bzImage.  What scripts/check-kernel-repro compares with the cache."""
    hosttools.require("dpkg-query", "make", "gcc", "bc", "bison", "flex", "tar", "xz")
    tarball, version = source()
    srctree = _extract(tarball, version, paths.cache_dir() / "kernel")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    return _compile(srctree, work / "obj", work / "build.log", _env(tarball), cache_key(version))


def _source_date(tarball):
    import time
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(tarball.stat().st_mtime))
