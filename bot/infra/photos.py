"""The photo files of logged submissions: one folder per user (named by the pseudonym), each
photo written atomically, so ``Storage.delete_user`` removes a user's folder whatever a crash
left in it, and the start-up sweep finds ``.tmp-`` leftovers."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path


class PhotoStore:
    """Files under ``root/<pp>/<pseudonym>/<sha256>.jpg``: one folder per user, so a user's
    files can always be found and removed, even those a crash left without a row.

    Photos written before per-user folders (``root/<ab>/<sha>.jpg``) are still found and removed.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, owner: str) -> Path:
        return self.root / owner[:2] / owner

    def path(self, owner: str, sha: str) -> Path:
        return self.folder(owner) / f"{sha}.jpg"

    def legacy_path(self, sha: str) -> Path:
        return self.root / sha[:2] / f"{sha}.jpg"

    def find(self, owner: str, sha: str) -> Path:
        """Where the photo is (its user's folder, or the old shared layout)."""
        path = self.path(owner, sha)
        legacy = self.legacy_path(sha)
        return legacy if not path.exists() and legacy.exists() else path

    def put(self, owner: str, jpeg: bytes) -> tuple[str, bool]:
        """Store the bytes; returns (sha, created) — created is False when the file existed."""
        sha = hashlib.sha256(jpeg).hexdigest()
        dest = self.path(owner, sha)
        if dest.exists():
            return sha, False
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(jpeg)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)  # atomic: a reader sees the whole file or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha, True

    def remove_all(self, files: set[tuple[str, str]]) -> int:
        """Unlink several (owner, sha) files (called through a thread: unlinks are blocking I/O)."""
        return sum(self.remove(owner, sha) for owner, sha in files)

    def remove(self, owner: str, sha: str) -> bool:
        removed = False
        for path in (self.path(owner, sha), self.legacy_path(sha)):
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                pass
        return removed

    def remove_owner(self, owner: str) -> int:
        """Every file in the user's folder, whatever wrote it; returns how many photos went."""
        folder = self.folder(owner)
        if not folder.is_dir():
            return 0
        photos = 0
        for path in folder.iterdir():
            photos += path.suffix == ".jpg"
            path.unlink(missing_ok=True)
        folder.rmdir()
        return photos

    def sweep(self, referenced: set[tuple[str, str]], grace_s: float = 3600.0, tmp_before: float | None = None) -> dict[str, int]:
        """Remove ``.tmp-`` leftovers and photos no row refers to, once older than ``grace_s``
        (a file younger than that may belong to a write in progress). ``tmp_before``: a
        ``.tmp-`` file written before this time is a leftover whatever its age (a process killed
        mid-write; ``Storage.sweep`` passes the process's start when no other process writes here)."""
        cutoff = time.time() - grace_s
        tmp_cutoff = max(cutoff, tmp_before) if tmp_before is not None else cutoff
        shas = {sha for _, sha in referenced}
        counts = {"tmp": 0, "unreferenced": 0}
        if not self.root.is_dir():
            return counts
        for path in self.root.rglob("*"):
            if not path.is_file():
                continue
            mtime = path.stat().st_mtime
            if mtime > (tmp_cutoff if path.name.startswith(".tmp-") else cutoff):
                continue
            rel = path.relative_to(self.root).parts
            if path.name.startswith(".tmp-"):
                counts["tmp"] += 1
            elif len(rel) == 3 and (rel[1], path.stem) not in referenced or len(rel) == 2 and path.stem not in shas:
                counts["unreferenced"] += 1
            else:
                continue
            path.unlink(missing_ok=True)
        return counts
