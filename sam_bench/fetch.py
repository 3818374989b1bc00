"""Downloads and archive extraction that refuse what they cannot trust (``datasets prepare``, ``models download``).

A download is *verified* only when it matches a published hash. One without a published hash is
kept as *unverified*, after checks that catch the usual failures (a body shorter than the server's
``Content-Length``, an HTML error page instead of the file), and its sha256 is written to a
download record ``FILE.download.json`` so a later run can tell that the file changed since.
Plain ``http://`` is refused unless the caller allows it. Archives (zip, tar, tar.gz/.tgz, bz2, xz)
are checked member by member before anything is written and refused whole if one member is an
absolute path, has a ``..`` component, is a link or a device, or would land outside the target.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

from sam_bench.errors import BadInput, ConfigError, SamBenchError

CHUNK = 1 << 20
SCHEMES = ("https", "file")
RECORD_SUFFIX = ".download.json"


class DownloadError(SamBenchError):
    """A download failed or was refused; ``offline`` is True when the server could not be reached."""

    def __init__(self, message: str, offline: bool = False):
        super().__init__(message)
        self.offline = offline


# -- hashes and download records -----------------------------------------------------------
def digest(path: str | Path, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def record_path(path: str | Path) -> Path:
    """Where the download record of ``path`` lives: ``path`` + ``.download.json``."""
    path = Path(path)
    return path.with_name(path.name + RECORD_SUFFIX)


def write_record(path: str | Path, *, url: str, sha256: str, verified: bool, note: str) -> Path:
    """Write the download record of ``path`` (url, sha256, size, verified or not and why)."""
    path = Path(path)
    rec = {"file": path.name, "url": url, "sha256": sha256, "size": path.stat().st_size,
           "verified": verified, "note": note}
    out = record_path(path)
    out.write_text(json.dumps(rec, indent=1) + "\n")
    return out


def read_record(path: str | Path) -> dict | None:
    """The download record of ``path``; None when there is none or it is unreadable."""
    try:
        rec = json.loads(record_path(path).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def record_mismatch(path: str | Path, sha256: str) -> str | None:
    """Why ``path`` (whose sha256 is ``sha256``) no longer matches its download record; None if it does
    or there is no record."""
    rec = read_record(path)
    if rec is None or rec.get("sha256") == sha256:
        return None
    return f"{path} changed since it was downloaded (recorded sha256 {rec.get('sha256')}, now {sha256})"


# -- download ------------------------------------------------------------------------------
def check_scheme(url: str, allow_http: bool = False) -> None:
    """``ConfigError`` unless ``url`` is https or file (or http with ``allow_http``)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "http" and not allow_http:
        raise ConfigError(f"{url}: refusing a plain-http download (it can be altered in transit); use the https "
                          f"URL, or pass --allow-http if this host serves no https")
    if scheme not in SCHEMES + ("http",):
        raise ConfigError(f"{url}: unsupported URL scheme {scheme!r} (use https)")


def looks_like_html(head: bytes) -> bool:
    """True when a payload starts with ``<`` (after whitespace/BOM): an HTML/XML page, never an archive,
    a JSON file or a torch checkpoint."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _range_total(headers: Any) -> int | None:
    """Total size from a ``Content-Range: bytes */N`` or ``bytes A-B/N`` header; None if absent."""
    value = headers.get("Content-Range") if headers else None
    m = re.search(r"/(\d+)\s*$", value or "")
    return int(m.group(1)) if m else None


def _header(resp: Any, name: str) -> str | None:
    return resp.headers.get(name) if getattr(resp, "headers", None) else None


def download_file(url: str, part: Path, *, opener: Callable[..., Any] | None = None, allow_http: bool = False,
                  progress: bool = False, desc: str = "", timeout: float = 60) -> int | None:
    """Stream ``url`` into ``part``, resuming an existing ``part`` with an HTTP ``Range`` request.

    Returns the total size the server announced (None if it did not). Refuses, deleting ``part``:
    an HTML page (``Content-Type: text/html`` or a body starting with ``<``) and a body shorter than
    announced. ``opener`` replaces ``urllib.request.urlopen`` (tests). ``DownloadError`` on failure.
    """
    check_scheme(url, allow_http)
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "sam-bench"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = (opener or urllib.request.urlopen)(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if not (exc.code == 416 and have):
            raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
        resp, total = None, _range_total(exc.headers)  # 416: the part already holds the whole file
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"cannot download {url} ({getattr(exc, 'reason', exc)})", offline=True) from exc
    if resp is not None:
        try:
            with resp:
                total = _stream(resp, part, have, url, progress, desc)
        except (OSError, http.client.HTTPException) as exc:  # connection lost mid-body: keep part to resume
            raise DownloadError(f"download of {url} interrupted ({exc}); run again to resume from "
                                f"{part}", offline=True) from exc
    return _check_complete(part, total, url)


def _stream(resp: Any, part: Path, have: int, url: str, progress: bool, desc: str) -> int | None:
    """Write the body of ``resp`` to ``part`` (appending on a 206); the total size announced, if any."""
    from tqdm import tqdm

    ctype = (_header(resp, "Content-Type") or "").split(";")[0].strip().lower()
    if ctype == "text/html":
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: the server sent an HTML page (Content-Type text/html), not the file; "
                            f"an error or login page? Nothing kept")
    status = getattr(resp, "status", None) or resp.getcode()
    resumed = bool(have) and status == 206
    have = have if resumed else 0  # a server that ignores Range sends the whole file: start over
    length = _header(resp, "Content-Length")
    total = have + int(length) if length and length.isdigit() else None
    with open(part, "ab" if resumed else "wb") as fh, \
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=desc, disable=not progress) as bar:
        for block in iter(lambda: resp.read(CHUNK), b""):
            fh.write(block)
            bar.update(len(block))
    return total


def _check_complete(part: Path, total: int | None, url: str) -> int | None:
    """Refuse (deleting ``part``) a short body or an HTML/XML payload; the announced total otherwise."""
    size = part.stat().st_size if part.exists() else 0
    problem = None
    if total is not None and size != total:
        problem = f"truncated download: {size} bytes received, the server announced {total}"
    elif size == 0:
        problem = "empty download"
    else:
        with open(part, "rb") as fh:
            if looks_like_html(fh.read(512)):
                problem = "the payload starts with '<': an HTML error page, not the file"
    if problem:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: {problem}; partial file removed")
    return total


# -- archives ------------------------------------------------------------------------------
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def is_archive(path: Path) -> bool:
    """True for the file names ``extract`` unpacks."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def unsafe_name(name: str) -> str | None:
    """Why an archive member name could write outside the target (absolute, drive, ``..``); None if safe."""
    p = name.replace("\\", "/")
    if not p or "\x00" in p:
        return "empty or NUL in the name"
    if p.startswith("/") or re.match(r"^[A-Za-z]:", p):
        return "absolute path"
    if ".." in p.split("/"):
        return "'..' component"
    return None


def _inside(archive: Path, out: Path, name: str) -> Path:
    """``out / name`` after checking that its resolved path stays under ``out`` (a pre-existing symlink)."""
    target = out / name.replace("\\", "/")
    if not target.resolve().is_relative_to(out.resolve()):
        raise BadInput(f"{archive}: refusing to extract member {name!r}: it resolves outside {out} "
                       f"(through an existing link)")
    return target


def _zip_members(zf: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, str | None]]:
    """(member, why refused or None) of each zip member: only regular files and folders pass."""
    rows = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        why = unsafe_name(info.filename)
        if why is None and stat.S_ISLNK(mode):
            why = "symbolic link"
        elif why is None and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            why = "device or special file"
        rows.append((info, why))
    return rows


def _tar_members(tf: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, str | None]]:
    """(member, why refused or None) of each tar member: only regular files and folders pass."""
    rows = []
    for m in tf.getmembers():
        why = unsafe_name(m.name)
        if why is None and (m.issym() or m.islnk()):
            why = f"{'symbolic' if m.issym() else 'hard'} link to {m.linkname!r}"
        elif why is None and not (m.isfile() or m.isdir()):
            why = "device, fifo or special file"
        rows.append((m, why))
    return rows


def _refuse(archive: Path, bad: list[tuple[str, str]]) -> None:
    if bad:
        listed = "; ".join(f"{n!r}: {why}" for n, why in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise BadInput(f"{archive}: refusing to extract, unsafe members: {listed}{more}; nothing was written")


def _write(src: Any, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK)


def _unpack(archive: Path, out: Path, rows: list, name: Callable, is_dir: Callable, opener: Callable) -> int:
    """Refuse if any member is unsafe, else write every member; the number of files written.

    ``rows``: (member, why unsafe or None); ``name``/``is_dir``/``opener`` read a member of this archive kind.
    """
    _refuse(archive, [(name(m), w) for m, w in rows if w])
    targets = [(m, _inside(archive, out, name(m))) for m, _ in rows]
    out.mkdir(parents=True, exist_ok=True)
    for member, target in targets:
        if is_dir(member):
            target.mkdir(parents=True, exist_ok=True)
        else:
            _write(opener(member), target)
    return sum(not is_dir(m) for m, _ in targets)


def _extract_zip(archive: Path, out: Path) -> int:
    with zipfile.ZipFile(archive) as zf:
        return _unpack(archive, out, _zip_members(zf), lambda i: i.filename, lambda i: i.is_dir(), zf.open)


def _extract_tar(archive: Path, out: Path) -> int:
    with tarfile.open(archive, "r:*") as tf:
        return _unpack(archive, out, _tar_members(tf), lambda m: m.name, lambda m: not m.isfile(), tf.extractfile)


def extract(archive: str | Path, out: str | Path) -> int:
    """Unpack a zip or tar archive into ``out`` member by member; the number of files written.

    Every member is checked before the first is written; ``BadInput`` naming the archive and the
    members if any is unsafe, or if the archive is corrupt. File modes from the archive are not
    applied (no setuid, no exec bits).
    """
    archive, out = Path(archive), Path(out)
    try:
        return (_extract_zip if zipfile.is_zipfile(archive) else _extract_tar)(archive, out)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        raise BadInput(f"{archive}: cannot extract into {out} ({type(exc).__name__}: {exc}); not a complete "
                       f"zip or tar archive?") from None
