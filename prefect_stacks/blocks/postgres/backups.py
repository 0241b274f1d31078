"""Where backups go and how long they stay: names, retention, and the file-system block.

A backup is ``<prefix>/<database>/<database>-<UTC time>.dump`` (``20250102T030405Z``),
so the name alone says what and when, and sorting by name is sorting by time. Retention
reads the time from the name (never a file's mtime, which a copy between buckets
changes) and only ever touches files named that way.

:class:`BackupStorage` puts files on Prefect's own file-system blocks (``LocalFileSystem``,
``RemoteFileSystem`` and its fsspec URLs: ``s3://``, ``gcs://``, ``sftp://`` ...) through
fsspec, streaming: ``write_path`` would hold a whole dump in memory. A file is written
under a ``.partial`` name and renamed when complete, so the final name never holds half a
dump.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fsspec
from prefect.filesystems import LocalFileSystem, RemoteFileSystem

from prefect_stacks.exceptions import ConfigurationError, DatabaseError

TIME_FORMAT = "%Y%m%dT%H%M%SZ"
SUFFIX = ".dump"
PARTIAL = ".partial"


def safe_name(database: str) -> str:
    """A database name fit for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", database).strip(".") or "database"


def backup_dir(prefix: str, database: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{safe_name(database)}" if prefix else safe_name(database)


def backup_name(database: str, at: datetime) -> str:
    """``<database>-<UTC time>.dump``."""
    return f"{safe_name(database)}-{at.astimezone(timezone.utc).strftime(TIME_FORMAT)}{SUFFIX}"


def backup_time(name: str, database: str) -> datetime | None:
    """When the backup ``name`` of ``database`` was made; None for any other file."""
    match = re.fullmatch(
        re.escape(safe_name(database)) + r"-(\d{8}T\d{6}Z)" + re.escape(SUFFIX), name
    )
    if not match:
        return None
    return datetime.strptime(match.group(1), TIME_FORMAT).replace(tzinfo=timezone.utc)


def expired(
    names: list[str],
    database: str,
    *,
    keep_count: int,
    keep_days: int,
    now: datetime,
    keep: str = "",
) -> list[str]:
    """The backups of ``database`` among ``names`` that retention deletes, oldest first:
    all but the newest ``keep_count`` (0: no limit) and those older than ``keep_days``
    (0: no limit). ``keep`` (the backup just made) and other files are never listed."""
    dated = sorted(
        ((t, n) for n in names if (t := backup_time(n, database)) is not None), reverse=True
    )
    cutoff = now - timedelta(days=keep_days) if keep_days > 0 else None
    doomed = []
    for index, (at, name) in enumerate(dated):
        if name == keep:
            continue
        if (keep_count > 0 and index >= keep_count) or (cutoff is not None and at < cutoff):
            doomed.append(name)
    return sorted(doomed, key=lambda n: backup_time(n, database) or now)


@dataclass
class BackupStorage:
    """A Prefect file-system block seen through fsspec: ``root`` is its base path."""

    fs: fsspec.AbstractFileSystem
    root: str
    label: str

    @classmethod
    def of(cls, block: LocalFileSystem | RemoteFileSystem, name: str = "") -> BackupStorage:
        if isinstance(block, LocalFileSystem):
            root = str(Path(block.basepath or ".").expanduser().resolve())
            return cls(fsspec.filesystem("file"), root, name or root)
        if isinstance(block, RemoteFileSystem):
            return cls(block.filesystem, block.basepath.rstrip("/"), name or block.basepath)
        raise ConfigurationError(
            f"{type(block).__name__} is not a file system backups can go to: use a "
            "LocalFileSystem or RemoteFileSystem block"
        )

    def url(self, path: str) -> str:
        return f"{self.root}/{path.lstrip('/')}"

    def put(self, local: Path, path: str) -> str:
        """Copy ``local`` to ``path`` (a ``.partial`` name first, renamed when complete);
        an existing file of that name is an error. Returns the final URL."""
        final, partial = self.url(path), self.url(path) + PARTIAL
        if self.fs.exists(final):
            raise DatabaseError(f"{final} exists already on {self.label}: not overwritten")
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        try:
            self.fs.put_file(str(local), partial)
            self.fs.mv(partial, final)
        except BaseException as exc:
            left = self._remove_quietly(partial)
            if isinstance(exc, Exception):
                raise DatabaseError(
                    f"writing the backup to {final} on {self.label} failed ({exc}); "
                    + ("nothing was left there" if left is None else f"remove {left} by hand")
                ) from exc
            raise
        return final

    def _remove_quietly(self, url: str) -> str | None:
        try:
            if self.fs.exists(url):
                self.fs.rm(url)
        except Exception:  # noqa: BLE001 - reported to the user by name
            return url
        return None

    def list(self, directory: str) -> list[str]:
        """File names in ``directory`` (none when it does not exist)."""
        url = self.url(directory)
        if not self.fs.exists(url):
            return []
        return sorted(
            str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
            for entry in self.fs.ls(url, detail=True)
            if entry.get("type") == "file"
        )

    def size(self, path: str) -> int:
        return int(self.fs.size(self.url(path)))

    def delete(self, path: str) -> None:
        url = self.url(path)
        if self.fs.exists(url):
            self.fs.rm(url)

    def get(self, path: str, local: Path) -> Path:
        self.fs.get_file(self.url(path), str(local))
        return local
