"""Fixtures for the VM tests: `booter` (per test), `shared_vm` (one booted VM per module),
`disk_copy` (a fresh copy of out/images/disk.img per test).

Every test under tests/vm/ is marked `vm`.  Without an image (or QEMU) they skip,
saying what to run, unless AETHER_REQUIRE_IMAGE=1 (set by `make test`), when they fail.
"""

import pytest

import harness

VM_DIR_MARK = pytest.mark.vm


def pytest_collection_modifyitems(config, items):
    here = str(harness.REPO / "tests" / "vm")
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(VM_DIR_MARK)


@pytest.fixture(scope="session")
def image():
    """Skip (or fail, with AETHER_REQUIRE_IMAGE=1) when the image or QEMU is missing."""
    problem = harness.image_problem()
    if problem:
        if harness.image_required():
            pytest.fail(f"{problem} [{harness.REQUIRE_ENV} is set, so this fails]",
                        pytrace=False)
        pytest.skip(problem)


@pytest.fixture(scope="session")
def disk_image():
    """out/images/disk.img; skip (or fail, with AETHER_REQUIRE_IMAGE=1) when it is missing."""
    problem = harness.disk_problem()
    if problem:
        if harness.image_required():
            pytest.fail(f"{problem} [{harness.REQUIRE_ENV} is set, so this fails]",
                        pytrace=False)
        pytest.skip(problem)
    return harness.qemu.default_disk()


@pytest.fixture
def disk_copy(disk_image, tmp_path):
    """A fresh copy of the built disk image for this test to boot (and write to)."""
    return harness.disk_copy(tmp_path / "disk.img")


@pytest.fixture
def booter(image, request):
    """boot(**options) -> a VM at its first prompt; every VM is killed after the test."""
    b = harness.Booter(request.node.name)
    yield b
    b.close()


@pytest.fixture(scope="module")
def shared_vm(image, request):
    """One VM at its prompt, shared by a module's read-only checks."""
    b = harness.Booter(f"{request.module.__name__}.shared")
    try:
        yield b.boot()
    finally:
        b.close()
