"""Where media bytes live: a content-addressed store keyed by sha256.

Two stores speak the same four calls: a directory (the default, `MEDIA_DIR`) and an
S3-compatible bucket (bot/media_s3.py). A file is written under its hash, so storing the same
bytes twice writes nothing new, and a half-written file never appears under its name.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_of(sha: str) -> str:
    """ab/cd/abcd…: two levels of directories keep any one directory small."""
    return f"{sha[:2]}/{sha[2:4]}/{sha}"


class MediaStore(Protocol):
    async def put(self, sha: str, data: bytes) -> bool:
        """Stores the bytes under their hash; False when they were there already."""

    async def get(self, sha: str) -> bytes | None:
        """The bytes, or None when the file is missing."""

    async def exists(self, sha: str) -> bool: ...

    def where(self, sha: str) -> str:
        """Where an operator finds the file (a path, or s3://bucket/key)."""


class DirectoryStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        return self.root / key_of(sha)

    def where(self, sha: str) -> str:
        return str(self.path(sha))

    def _put(self, sha: str, data: bytes) -> bool:
        target = self.path(sha)
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)  # atomic: readers see the whole file or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    async def put(self, sha: str, data: bytes) -> bool:
        return await asyncio.to_thread(self._put, sha, data)

    async def get(self, sha: str) -> bytes | None:
        p = self.path(sha)
        try:
            return await asyncio.to_thread(p.read_bytes)
        except FileNotFoundError:
            return None

    async def exists(self, sha: str) -> bool:
        return self.path(sha).exists()


_store: MediaStore | None = None


def use_store(store: MediaStore | None) -> None:
    """The process's store; the runtime sets it from the settings at start (tests per test)."""
    global _store
    _store = store


def current_store() -> MediaStore:
    if _store is None:
        raise RuntimeError("no media store configured (bot.media.configure)")
    return _store
