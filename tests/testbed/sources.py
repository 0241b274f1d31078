"""Vendored Go module sources for the test bed (tests/testbed/vendor/README.md).

Some modules the build needs are refused by the Go module proxy, while everything they
depend on is served. Their source is kept in the checkout as small archives: just what
`go build` reads (go.mod, go.sum, the non-test ``.go`` files, the files they
``//go:embed``) and the licence. This module packs such an archive from a git directory,
deterministically, checks an archive against its pinned sha256, and unpacks it.

Standard library only, like build.py: it runs before the virtualenv exists.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path, PurePosixPath

# Files kept from the top of the tree besides the Go sources.
TOP_FILES = ("go.mod", "go.sum", "LICENSE")
# Directories whose .go files `go build` of the provider never compiles: Go itself
# ignores testdata and names starting with "." or "_"; the rest hold tests, docs,
# examples and scripts (the kubernetes provider's manifest/test/... are test helpers).
SKIPPED_DIRS = frozenset({"testdata", "test", "tests", "examples", "docs", "website", "scripts"})
# `//go:build tools` is the tools.go idiom: a file no build compiles.
NEVER_BUILT = re.compile(r"^//go:build\s+(tools|ignore)\s*$", re.MULTILINE)
EMBED = re.compile(r"^\s*//go:embed\s+(.+)$", re.MULTILINE)


class SourceError(Exception):
    """A vendored source cannot be packed, verified or unpacked; the message says why."""


# --------------------------------------------------------------------------- git
def _git(git_dir: Path, *args: str, data: bytes | None = None) -> bytes:
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], input=data, capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise SourceError(f"git {' '.join(args)} in {git_dir}: {proc.stderr.decode().strip()}")
    return proc.stdout


def tag_commit(git_dir: Path, tag: str) -> str:
    """The commit a tag points at (annotated or not)."""
    return _git(git_dir, "rev-parse", "--verify", f"refs/tags/{tag}^{{commit}}").decode().strip()


def tree(git_dir: Path, commit: str) -> dict[str, tuple[str, str]]:
    """Every regular file of the commit: path -> (git mode, blob id). Blobs are read only
    for the files that are kept, so a snapshot missing some large test data still packs."""
    out = {}
    for line in _git(git_dir, "ls-tree", "-r", "-z", commit).split(b"\0"):
        if not line:
            continue
        meta, path = line.decode().split("\t", 1)
        mode, kind, blob = meta.split()
        if kind == "blob" and mode in ("100644", "100755"):
            out[path] = (mode, blob)
    return out


def read_blobs(git_dir: Path, blobs: list[str]) -> dict[str, bytes]:
    """The contents of ``blobs`` (one `git cat-file --batch`)."""
    raw = _git(git_dir, "cat-file", "--batch", data="".join(b + "\n" for b in blobs).encode())
    found: dict[str, bytes] = {}
    at = 0
    for blob in blobs:
        end = raw.index(b"\n", at)
        header = raw[at:end].decode().split()
        if header[-1] == "missing":
            raise SourceError(f"blob {blob} is missing from the snapshot")
        size = int(header[2])
        found[blob] = raw[end + 1 : end + 1 + size]
        at = end + 1 + size + 1
    return found


# --------------------------------------------------------------------------- what go build reads
def compiled(path: str) -> bool:
    """Whether ``path`` is a .go file a `go build` of the module can compile."""
    if not path.endswith(".go") or path.endswith("_test.go"):
        return False
    dirs = path.split("/")[:-1]
    return not any(d in SKIPPED_DIRS or d.startswith((".", "_")) for d in dirs)


def embed_patterns(source: str) -> list[str]:
    """The patterns of a Go file's ``//go:embed`` lines (quoted or not)."""
    found = []
    for line in EMBED.findall(source):
        found += [a or b or c for a, b, c in re.findall(r'"([^"]+)"|`([^`]+)`|(\S+)', line)]
    return found


def _matches(pattern: str, path: str) -> bool:
    """Go's path.Match: a `*` never crosses a `/`."""
    parts, names = pattern.split("/"), path.split("/")
    return len(parts) == len(names) and all(map(fnmatch.fnmatchcase, names, parts))


def embedded(go_file: str, pattern: str, files: set[str]) -> list[str]:
    """The files one ``//go:embed`` pattern names: matching files, and every file under a
    matching directory (without names starting with "." or "_" unless ``all:``)."""
    keep_hidden = pattern.startswith("all:")
    pattern = pattern.removeprefix("all:")
    base = PurePosixPath(go_file).parent
    full = str(base / pattern) if str(base) != "." else pattern
    hits = set()
    for path in files:
        names = path.split("/")
        for depth in range(1, len(names) + 1):
            if _matches(full, "/".join(names[:depth])):
                under = names[depth:]
                if keep_hidden or not any(n.startswith((".", "_")) for n in under):
                    hits.add(path)
                break
    if not hits:
        raise SourceError(f"{go_file}: //go:embed {pattern} matches no file")
    return sorted(hits)


def collect(git_dir: Path, commit: str) -> dict[str, tuple[bytes, str]]:
    """What `go build` of the module at ``commit`` reads, plus the licence:
    path -> (content, git mode)."""
    files = tree(git_dir, commit)
    missing = [f for f in TOP_FILES if f not in files]
    if missing:
        raise SourceError(f"{commit} has no {', '.join(missing)}")
    wanted = [f for f in files if f in TOP_FILES or compiled(f)]
    contents = read_blobs(git_dir, [files[f][1] for f in wanted])
    kept = {f: (contents[files[f][1]], files[f][0]) for f in wanted}
    for name, (content, _) in list(kept.items()):
        if not name.endswith(".go"):
            continue
        text = content.decode("utf-8", "replace")
        if NEVER_BUILT.search(text.split("\npackage ", 1)[0]):
            del kept[name]
            continue
        extra = [e for p in embed_patterns(text) for e in embedded(name, p, set(files))]
        more = [e for e in extra if e not in kept]
        blobs = read_blobs(git_dir, [files[e][1] for e in more])
        kept.update({e: (blobs[files[e][1]], files[e][0]) for e in more})
    return kept


# --------------------------------------------------------------------------- the archive
def pack(members: dict[str, tuple[bytes, str]], prefix: str) -> bytes:
    """A deterministic tar.gz of ``members`` under ``prefix/``: sorted names, mtime 0,
    uid/gid 0 and no owner names, modes 0644/0755, gzip without a name or time."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            content, mode = members[name]
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(content)
            info.mode = 0o755 if mode == "100755" else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify(path: Path, expected: str) -> None:
    """Raise SourceError, naming the file and both hashes, unless ``path`` hashes to
    ``expected``."""
    if not path.is_file():
        raise SourceError(f"{path}: the vendored source is missing")
    actual = sha256(path)
    if actual != expected:
        raise SourceError(
            f"{path}: sha256 mismatch: versions.toml pins {expected}, the file is {actual}"
        )


def unpack(path: Path, into: Path) -> Path:
    """Unpack the archive into ``into`` (replacing an earlier copy); its top directory."""
    with tarfile.open(path, "r:gz") as tar:
        tops = {PurePosixPath(m.name).parts[0] for m in tar.getmembers()}
        if len(tops) != 1:
            raise SourceError(f"{path}: expected one top directory, found {sorted(tops)}")
        top = into / tops.pop()
        shutil.rmtree(top, ignore_errors=True)
        into.mkdir(parents=True, exist_ok=True)
        tar.extractall(into, filter="data")
    return top
