"""aether/safepath.py: paths walked beneath a directory descriptor, no link followed out."""

import os

import pytest

from aether import safepath
from aether.safepath import Beneath, Refused


@pytest.fixture
def tree(tmp_path):
    top = tmp_path / "top"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_text("deep")
    (tmp_path / "outside").write_text("secret")
    return top


def fds():
    return len(os.listdir("/proc/self/fd"))


def rule(beneath, path, **kw):
    with pytest.raises(Refused) as info:
        fd, *_ = beneath.open_file(path, **kw)
        os.close(fd)
    return info.value.rule


def test_links_inside_are_followed_as_the_kernel_would(tree):
    (tree / "abs").symlink_to(tree / "a" / "b")                  # absolute, inside
    (tree / "a" / "up").symlink_to("b/..")                       # '..' after a link: physical
    with Beneath(tree) as b:
        fd, shown, _ = b.open_file("abs/f")
        assert os.read(fd, 10) == b"deep" and shown == f"{tree}/a/b/f"
        os.close(fd)
        fd, shown = b.open_dir("a/up/b")
        assert shown == f"{tree}/a/b"
        os.close(fd)
        fd, shown, _ = b.open_file(f"{tree}/a/./b//f")            # an absolute path inside
        os.close(fd)


def test_every_way_out_is_refused_by_its_rule(tree, tmp_path):
    (tree / "out").symlink_to(tmp_path / "outside")
    (tree / "rel").symlink_to("../outside")
    (tree / "loop").symlink_to("loop")
    with Beneath(tree) as b:
        assert rule(b, "out") == "symlink_escape"
        assert rule(b, "rel") == "symlink_escape"
        assert rule(b, "../outside") == "dotdot_escape"
        assert rule(b, str(tmp_path / "outside")) == "outside_root"
        assert rule(b, "loop") == "too_many_links"
        assert rule(b, "a/../../outside") == "dotdot_escape"


def test_depth_is_bounded_and_descriptors_stay_few(tree):
    deep = "/".join(["d"] * (safepath.MAX_DEPTH + 2))
    before = fds()
    with Beneath(tree) as b:
        with pytest.raises(Refused) as info:
            b.walk(deep + "/x", make=lambda name, fd: None)
        assert info.value.rule == "too_deep"
        for _ in range(50):
            with pytest.raises(Refused):
                b.open_file("../x")
            with pytest.raises(FileNotFoundError):
                b.open_file("a/nope/x")
    assert fds() == before                                   # nothing leaked on any path


def test_the_privileged_tree_is_all_of_it_and_hard_links_pass(tree, tmp_path):
    os.link(tmp_path / "outside", tree / "alias")
    with Beneath("/", confined=False) as b:
        fd, shown, st = b.open_file(str(tree / "alias"))
        assert st.st_nlink == 2 and shown == str(tree / "alias")
        os.close(fd)
        fd, shown = b.open_dir("/..")
        assert shown == "/"
        os.close(fd)
    with Beneath(tree) as b:
        assert rule(b, "alias") == "hardlink"
