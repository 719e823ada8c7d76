"""Which files of a workdir or file-mount source the client uploads (SkyPilot's rules).

- If the source's top directory has a ``.skyignore``, only ``.skyignore`` files count:
  that one and any in subdirectories, each applying to its own directory.
- Otherwise the ``.gitignore`` files (top and nested, each for its own directory) and
  ``.git/info/exclude`` count, as git would apply them.
- ``.git`` itself is never uploaded.

Patterns are gitignore patterns (matched with :mod:`pathspec`): ``*.log`` matches at any
depth, ``/data`` only next to the ignore file, ``build/`` only directories, ``!keep.log``
re-includes; the last match wins, and a deeper file's patterns come after its parents'.
A file inside an ignored directory cannot be re-included (as in git). SkyPilot documents
``.skyignore`` as rsync filter rules; the patterns it shows (``/file.txt``, ``/dir``,
``*.jar``, ``/dir/*.jar``) mean the same here, but rsync's ``+``/``-`` rule prefixes are
not supported.
"""

from __future__ import annotations

import os
from typing import Any

SKYIGNORE = ".skyignore"
GITIGNORE = ".gitignore"
ALWAYS_SKIPPED = frozenset({".git"})


def _read_lines(path: str) -> list[str] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _spec(lines: list[str]) -> Any:
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


class IgnoreRules:
    """The ignore rules of one source directory (``root``), read as the walk descends."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.file_name = SKYIGNORE if os.path.isfile(os.path.join(root, SKYIGNORE)) else GITIGNORE
        #: (directory relative to root with a trailing "/" or "", spec), shallowest first.
        self._specs: list[tuple[str, Any]] = []
        if self.file_name == GITIGNORE:
            lines = _read_lines(os.path.join(root, ".git", "info", "exclude"))
            if lines:
                self._specs.append(("", _spec(lines)))

    def enter(self, rel_dir: str) -> None:
        """Read the ignore file of directory ``rel_dir`` ("" for the root, else ``a/b/``)."""
        lines = _read_lines(os.path.join(self.root, rel_dir, self.file_name))
        if lines:
            self._specs.append((rel_dir, _spec(lines)))

    def ignored(self, rel_path: str, is_dir: bool) -> bool:
        """Whether ``rel_path`` (``/``-separated, relative to the root) is left out."""
        name = rel_path.rsplit("/", 1)[-1]
        if name in ALWAYS_SKIPPED:
            return True
        verdict = False
        for prefix, spec in self._specs:
            if prefix and not rel_path.startswith(prefix):
                continue
            local = rel_path[len(prefix) :] + ("/" if is_dir else "")
            result = spec.check_file(local).include
            if result is not None:
                verdict = result
        return verdict
