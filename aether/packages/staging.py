"""Uploads of package archives in progress: bounded everywhere a peer could push.

* the size is declared first and must be at most MAX_BYTES (and fit on the disk: the
  caller's ``prepare(size)`` checks, deploy.py);
* one upload per caller at a time, MAX_UPLOADS in all; each chunk must come at the offset
  where the last one ended, and nothing past the declared size is taken;
* an upload not committed within UPLOAD_SECONDS, or whose connection closes, is dropped;
* it is staged in ``system/uploads/`` (root's, 0700: no agent can reach it), in a file
  created ``O_EXCL | O_NOFOLLOW``; its sha256 is checked at commit (deploy.py).
"""

import base64
import hashlib
import os
import time

MAX_BYTES = 64 << 20           # one package archive
MAX_UPLOADS = 2                # at once, machine-wide
CHUNK_BYTES = 512 << 10        # raw bytes of one chunk (base64 keeps the frame under 1 MiB)
UPLOAD_SECONDS = 300.0


class DeployError(Exception):
    """A deploy step is refused; ``kind`` maps to an ABI error (invalid, conflict, ...)."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


class Upload:
    def __init__(self, principal, conn, path, fd, size, sha256, deadline):
        self.principal, self.conn, self.path, self.fd = principal, conn, path, fd
        self.size, self.sha256, self.deadline = size, sha256, deadline
        self.received, self.hash = 0, hashlib.sha256()

    def drop(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class Uploads:
    """The uploads in progress, by caller principal; ``prepare(size)`` raises DeployError
    when one of that size cannot be taken (the data partition, the layout)."""

    def __init__(self, loop, log, directory, prepare):
        self.loop, self.log, self.directory, self.prepare = loop, log, directory, prepare
        self.active = {}

    def begin(self, caller, conn, size, sha256):
        if caller.principal in self.active:
            raise DeployError("conflict", f"{caller.principal} has an upload in progress; one at a time "
                                          "(package.abort ends it)")
        if len(self.active) >= MAX_UPLOADS:
            raise DeployError("busy", f"{MAX_UPLOADS} uploads are in progress; try again when one ends")
        if size > MAX_BYTES:
            raise DeployError("invalid", f"the package is {size} bytes; at most {MAX_BYTES} "
                                         f"({MAX_BYTES >> 20} MiB) may be deployed: vendor fewer dependencies")
        self.prepare(size)
        path = os.path.join(self.directory, f"{os.urandom(8).hex()}.part")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        upload = Upload(caller.principal, conn, path, fd, size, sha256, time.monotonic() + UPLOAD_SECONDS)
        self.active[caller.principal] = upload
        self.loop.call_later(UPLOAD_SECONDS, lambda: self._expire(upload))
        return {"chunk_bytes": CHUNK_BYTES, "expires_s": UPLOAD_SECONDS, "size": size}

    def chunk(self, caller, offset, data):
        upload = self._get(caller)
        if offset != upload.received:
            self._drop(upload)
            raise DeployError("invalid", f"chunk at offset {offset}, expected {upload.received}: chunks "
                                         "come in order; the upload is dropped (begin again)")
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError:
            self._drop(upload)
            raise DeployError("invalid", "chunk data is not base64; the upload is dropped") from None
        if upload.received + len(raw) > upload.size:
            self._drop(upload)
            raise DeployError("invalid", f"the chunks pass the declared size of {upload.size} bytes; "
                                         "the upload is dropped")
        view = memoryview(raw)
        while view:
            view = view[os.write(upload.fd, view):]
        upload.hash.update(raw)
        upload.received += len(raw)
        return {"received": upload.received, "size": upload.size}

    def abort(self, caller):
        upload = self.active.get(caller.principal)
        if upload is None:
            return {"aborted": False}
        self._drop(upload)
        return {"aborted": True}

    def take(self, caller):
        """The caller's upload, no longer in progress (the committer drops its file)."""
        upload = self._get(caller)
        del self.active[upload.principal]
        return upload

    def on_close(self, conn):
        for upload in [u for u in self.active.values() if u.conn is conn]:
            self._drop(upload)

    def _get(self, caller):
        upload = self.active.get(caller.principal)
        if upload is None:
            raise DeployError("conflict", f"{caller.principal} has no upload in progress (package.begin first)")
        return upload

    def _drop(self, upload):
        if self.active.get(upload.principal) is upload:
            del self.active[upload.principal]
        upload.drop()

    def _expire(self, upload):
        if self.active.get(upload.principal) is upload:
            self.log.warning(f"packages: the upload of {upload.principal} was not committed within "
                             f"{UPLOAD_SECONDS:g}s; dropped")
            self._drop(upload)
