"""Intents over files and the network: list, read, write, delete, fetch.
"""

import re

from .words import DELETE, WRITE
from .registry import Match, intent, tool


@intent("files.list", "files", "list a directory",
        ["list /var/lib/aether", "what is in /etc?", "show the files in /tmp"])
def files_list(u, env):
    if not u.paths or u.has(*DELETE, *WRITE):
        return None
    path = u.paths[0]
    if "." in path.rsplit("/", 1)[-1] and not u.has("directory", "folder", "dir", "ls", "list"):
        return None                                   # a file's name: show it
    dirish = path.endswith("/") or u.has("directory", "folder", "dir", "files", "ls", "list", "in", "inside",
                                        "contents of", "contains", "contain", "entries")
    if not dirish or u.has("read", "cat", "print", "show file", "open"):
        return None
    return Match(2.6, [tool("files.list", f"entries of {path}", path=path)])


@intent("files.read", "files", "show a file's contents",
        ["show /etc/hostname", "cat /proc/version", "read the file /var/lib/aether/config"])
def files_read(u, env):
    if not u.paths or u.has(*DELETE, *WRITE):
        return None
    path = u.paths[0]
    score = 1.8 + (0.6 if u.has("read", "cat", "show", "print", "open", "view", "contents", "display",
                                "what", "file") else 0)
    if path.endswith("/") or u.has("directory", "folder", "dir", "ls", "list"):
        score -= 1
    return Match(score, [tool("files.read", f"the contents of {path}", path=path)])


@intent("files.write", "files", "write text to a file (needs yes: it changes the machine)",
        ["write 'hello' to /tmp/greeting", "append \"done\" to /tmp/log", "overwrite /tmp/x with 'new text'"])
def files_write(u, env):
    if not u.paths or not u.has(*WRITE, "add"):
        return None
    if u.has(*DELETE):
        return None
    path = u.paths[0]
    content = u.quoted[0] if u.quoted else None
    if content is None:
        return Match(2.0, answer=f"What should I write to {path}? Put the text in quotes, "
                                 f"e.g. write \"hello\" to {path}.")
    mode = "append" if u.has("append", "add") else "overwrite" if u.has("overwrite", "replace") else "create"
    if not content.endswith("\n"):
        content += "\n"
    risk = f"replaces {path} if it exists" if mode == "overwrite" else None
    undo = (lambda _r: [tool("files.delete", f"delete {path} again", f"deletes {path}", path=path)]) \
        if mode == "create" else None
    says = {"create": f"create {path} (refused if it exists)", "append": f"append to {path}",
            "overwrite": f"replace {path}"}[mode]
    return Match(2.6, [tool("files.write", says, risk, undo=undo, path=path, content=content, mode=mode)])


@intent("files.delete", "files", "delete a file or directory (needs yes)",
        ["delete /tmp/greeting", "remove the directory /tmp/old recursively", "rm /tmp/x"])
def files_delete(u, env):
    if not u.paths or not u.has(*DELETE):
        return None
    path = u.paths[0]
    recursive = u.has("recursively", "recursive", "tree", "directory", "folder", "everything") \
        or re.search(r"(?:^|\s)-[a-z]*r", u.line) is not None
    args = {"path": path}
    if recursive:
        args["recursive"] = True
    return Match(2.8, [tool("files.delete", f"delete {path}" + (" and everything in it" if recursive else ""),
                            f"deletes {path}; it cannot be undone", **args)])


@intent("fetch", "files", "fetch a URL (sends a request off the machine: needs yes)",
        ["fetch http://10.0.2.2:8000/", "download http://example.org/file.txt"])
def fetch(u, env):
    if not u.urls:
        return None
    method = "HEAD" if u.has("head", "headers") else "GET"
    return Match(2.5, [tool("fetch.url", f"{method} {u.urls[0]}", "sends a request off the machine",
                            url=u.urls[0], method=method)])
