"""Content digests of weight files, so a resumed run can tell whether it still uses the same model (a loaded
module's parameters: :func:`worldwarp.diffusion.denoisers.digest.weights_digest`).

* :func:`file_digest` / :func:`folder_digest`: the bytes of weight files. Large files are hashed once: the
  digest is remembered in ``$XDG_CACHE_HOME/worldwarp/digests.json`` (default ``~/.cache``) under the file's
  real path, size and modification time, so a changed file is hashed again.

All digests are SHA-256, shortened to 16 hex digits.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["file_digest", "folder_digest"]

_CHUNK = 1 << 22


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "worldwarp" / "digests.json"


def _read_cache() -> dict[str, str]:
    try:
        data = json.loads(_cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict[str, str]) -> None:
    from worldwarp.errors import InputError
    from worldwarp.io.atomic import atomic_write_text

    try:
        atomic_write_text(_cache_file(), json.dumps(cache, indent=0, sort_keys=True) + "\n")
    except (OSError, InputError):  # a read-only home only costs hashing again next time
        pass


def file_digest(path: str | os.PathLike[str], *, use_cache: bool = True) -> str:
    """Digest of a file's bytes (remembered per real path, size and modification time)."""
    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    cache = _read_cache() if use_cache else {}
    if key in cache:
        return cache[key]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()[:16]
    if use_cache:
        cache = {k: v for k, v in _read_cache().items() if not k.startswith(f"{p}|")}
        cache[key] = digest
        _write_cache(cache)
    return digest


def folder_digest(path: str | os.PathLike[str], *, use_cache: bool = True) -> str:
    """Digest of every file under a folder (relative names and contents; hidden files and folders skipped)."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not f.is_file():
            continue
        h.update(f"{rel.as_posix()}|{file_digest(f, use_cache=use_cache)}\n".encode())
    return h.hexdigest()[:16]
