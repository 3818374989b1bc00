"""Fault injection for the inputs that must never run code or write outside their folder: a crafted
RefCOCO refs pickle, unsafe archive members, checksum mismatches, truncated downloads and HTML error
pages, plain-http URLs, and checkpoints without a published hash (reported unverified, re-checked)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import pickle
import stat
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from sam_bench import fetch
from sam_bench.cli import main
from sam_bench.data import catalog
from sam_bench.data.commands import fetch as fetch_entry
from sam_bench.data.refcoco import load_refs_pickle, open_refcoco
from sam_bench.errors import BadInput, CheckpointError, ConfigError
from sam_bench.models import checkpoints as ck
from text_fakes import write_refcoco


# -- refs pickle ---------------------------------------------------------------------------
class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _evil_refs(folder: Path, marker: Path) -> Path:
    path = folder / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 1, "payload": _RunsShell(marker)}], protocol=2))
    return path


def test_crafted_refs_pickle_is_refused_by_the_opener(tmp_path):
    write_refcoco(tmp_path)
    assert open_refcoco(tmp_path, "refcoco", split="val").meta["num_refs"] == 4  # the clean release opens
    marker = tmp_path / "PWNED"
    _evil_refs(tmp_path / "refcoco", marker)
    with pytest.raises(BadInput, match=r"refs\(unc\)\.p: cannot unpickle refs .*refused global (posix|os)\.system"):
        open_refcoco(tmp_path, "refcoco", split="val")
    assert not marker.exists()


def test_crafted_refs_pickle_is_reported_by_datasets_verify(tmp_path, capsys):
    write_refcoco(tmp_path / "RefCOCO")
    marker = tmp_path / "PWNED"
    _evil_refs(tmp_path / "RefCOCO" / "refcoco", marker)
    assert main(["datasets", "verify", "RefCOCO", "--data-root", str(tmp_path), "--split", "val"]) == 1
    out = capsys.readouterr().out
    assert "FAIL RefCOCO [val]: cannot open:" in out and "refused global" in out and "refs(unc).p" in out
    assert not marker.exists()


class _Evals:
    def __reduce__(self):
        return eval, ("6 * 7",)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_refs_pickle_with_builtin_eval_is_refused(protocol):
    data = pickle.dumps([_Evals()], protocol=protocol)
    assert pickle.loads(data) == [42]  # the stock unpickler runs it
    with pytest.raises(pickle.UnpicklingError, match=r"refused global (__builtin__|builtins)\.eval"):
        load_refs_pickle(io.BytesIO(data))


REFS = [{"ref_id": 7, "ann_id": 70, "image_id": 3, "split": "testB", "category_id": 2, "sent_ids": [1, 2],
         "file_name": "COCO_train2014_000000000003_70.jpg", "bbox": (1.5, 2.0, 10.25, 4.0),
         "sentences": [{"sent_id": 1, "raw": "Caf\u00e9 on the left", "sent": "cafe on the left",
                        "tokens": ["cafe", "on", "the", "left"]}, {"sent_id": 2, "sent": "x" * 300}]},
        {"ref_id": 2 ** 40, "ann_id": -1, "image_id": 0, "split": "val", "sentences": [], "area": None}]


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_legitimate_refs_pickle_loads_like_pickle_load(protocol):
    data = pickle.dumps(REFS, protocol=protocol)
    assert load_refs_pickle(io.BytesIO(data)) == pickle.loads(data, encoding="latin1") == REFS


def test_python2_refs_pickle_loads_like_pickle_load():
    # what Python 2's cPickle protocol 2 writes for [{'ref_id': 1, 'raw': 'caf\xe9', 'id': 2L ** 70}]
    # (byte strings as SHORT_BINSTRING, a long as LONG1): decoded as latin-1, no global needed
    data = (b"\x80\x02]q\x00}q\x01(U\x06ref_idq\x02K\x01U\x03rawq\x03U\x04caf\xe9q\x04"
            b"U\x02idq\x05\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@ua.")
    assert load_refs_pickle(io.BytesIO(data)) == pickle.loads(data, encoding="latin1")
    assert load_refs_pickle(io.BytesIO(data)) == [{"ref_id": 1, "raw": "caf\u00e9", "id": 2 ** 70}]


# -- archives ------------------------------------------------------------------------------
def _zip(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    with zipfile.ZipFile(path) as zf:
        assert [i.filename for i in zf.infolist()] == [m[0] for m in members]  # names kept as crafted
    return path


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith(("gz", "tgz")) else "w") as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return path


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info


REG = stat.S_IFREG | 0o644
UNSAFE = {
    "zip ../evil": ("a.zip", lambda t: [("ok.txt", b"ok", REG), ("../evil", b"x", REG)], "'..' component"),
    "zip nested ../": ("a.zip", lambda t: [("d/../../evil", b"x", REG)], "'..' component"),
    "zip absolute": ("a.zip", lambda t: [("ok.txt", b"ok", REG), (str(t / "abs_evil"), b"x", REG)], "absolute"),
    "zip backslash ..": ("a.zip", lambda t: [("..\\evil", b"x", REG)], "'..' component"),
    "zip symlink": ("a.zip", lambda t: [("link", b"../../outside", stat.S_IFLNK | 0o777), ("ok.txt", b"ok", REG)],
                    "symbolic link"),
    "tar ../evil": ("a.tar", lambda t: [("ok.txt", b"ok"), ("../evil", b"x")], "'..' component"),
    "tgz ../evil": ("a.tgz", lambda t: [("ok.txt", b"ok"), ("../evil", b"x")], "'..' component"),
    "tar.gz absolute": ("a.tar.gz", lambda t: [("ok.txt", b"ok"), (str(t / "abs_evil"), b"x")], "absolute"),
    "tar symlink": ("a.tar", lambda t: [_link("link", str(t), tarfile.SYMTYPE), ("link/evil", b"x")],
                    "symbolic link"),
    "tar hardlink": ("a.tar", lambda t: [("ok.txt", b"ok"), _link("hl", "/etc/passwd", tarfile.LNKTYPE)],
                     "hard link"),
    "tar char device": ("a.tar", lambda t: [("ok.txt", b"ok"), _device("null")], "device"),
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_unsafe_archive_member_is_refused_and_nothing_written(tmp_path, case):
    name, members, why = UNSAFE[case]
    src = tmp_path / "src"
    src.mkdir()
    parent = tmp_path / "parent"
    (parent / "data").mkdir(parents=True)
    make = _zip if name.endswith(".zip") else _tar
    archive = make(src / name, members(tmp_path))
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(BadInput, match=f"{name}: refusing to extract, unsafe members: .*{why}"):
        fetch.extract(archive, parent / "data" / "out")
    assert sorted(tmp_path.rglob("*")) == before  # not even ok.txt, nothing beside or above the target
    assert not (tmp_path / "abs_evil").exists() and not (parent / "evil").exists()


def test_existing_symlink_in_target_cannot_be_used_to_escape(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(outside)
    archive = _zip(tmp_path / "a.zip", [("link/evil", b"x", REG)])
    with pytest.raises(BadInput, match="'link/evil': it resolves outside"):
        fetch.extract(archive, out)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("name", ["good.zip", "good.tgz", "good.tar"])
def test_safe_archive_extracts_every_file(tmp_path, name):
    files = {"top.txt": b"top", "d/e/deep.bin": bytes(range(256)) * 9, "d/empty.txt": b""}
    if name.endswith(".zip"):
        archive = _zip(tmp_path / name, [("d/", b"", stat.S_IFDIR | 0o755)] + [(n, b, REG) for n, b in files.items()])
    else:
        archive = _tar(tmp_path / name, list(files.items()))
    assert fetch.extract(archive, tmp_path / "out") == 3
    got = {p.relative_to(tmp_path / "out").as_posix(): p.read_bytes()
           for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert got == files


def test_corrupt_archive_is_a_clear_error(tmp_path):
    good = _tar(tmp_path / "x.tgz", [("a.bin", os.urandom(50_000))]).read_bytes()
    (tmp_path / "cut.tgz").write_bytes(good[: len(good) // 2])
    with pytest.raises(BadInput, match=r"cut\.tgz: cannot extract"):
        fetch.extract(tmp_path / "cut.tgz", tmp_path / "out")


# -- dataset downloads from a local server -------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    hits: list = []
    timeout = 10

    def do_GET(self):  # noqa: N802 (http.server API)
        self.hits.append(self.path)
        status, ctype, body, declared = self.routes.get(self.path, (404, "text/plain", b"no", None))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if declared is None else declared))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.routes, _Handler.hits = {}, []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _zip_bytes(tmp_path: Path) -> bytes:
    return _zip(tmp_path / "payload.zip", [("sub/a.txt", b"alpha", REG), ("b.txt", b"beta", REG)]).read_bytes()


def test_download_with_card_sha256_is_verified_then_extracted(tmp_path, server, capsys):
    base, h = server
    body = _zip_bytes(tmp_path)
    h.routes["/d.zip"] = (200, "application/zip", body, None)
    entry = {"url": f"{base}/d.zip", "file": "d.zip", "sha256": hashlib.sha256(body).hexdigest()}
    dest = tmp_path / "DS"
    fetch_entry(entry, dest, allow_http=True)
    assert (dest / "sub" / "a.txt").read_bytes() == b"alpha" and (dest / "b.txt").read_bytes() == b"beta"
    assert fetch.read_record(dest / "d.zip")["verified"] is True
    fetch_entry(entry, dest, allow_http=True)
    assert h.hits == ["/d.zip"] and "present, verified (sha256" in capsys.readouterr().out


def test_checksum_mismatch_refuses_before_extraction(tmp_path, server):
    base, h = server
    h.routes["/d.zip"] = (200, "application/zip", _zip_bytes(tmp_path), None)
    dest = tmp_path / "DS"
    with pytest.raises(BadInput, match="sha256 checksum mismatch .*nothing extracted"):
        fetch_entry({"url": f"{base}/d.zip", "sha256": "0" * 64}, dest, allow_http=True)
    assert list(dest.iterdir()) == []


def test_truncated_download_is_refused_and_removed(tmp_path, server):
    base, h = server
    body = _zip_bytes(tmp_path)
    h.routes["/d.zip"] = (200, "application/zip", body[:100], len(body))
    dest = tmp_path / "DS"
    with pytest.raises(BadInput, match=f"truncated download: 100 bytes received, the server announced {len(body)}"):
        fetch_entry({"url": f"{base}/d.zip"}, dest, allow_http=True)
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("ctype", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_error_page_is_refused_and_removed(tmp_path, server, ctype):
    base, h = server
    h.routes["/d.zip"] = (200, ctype, b"\n<!DOCTYPE html><html><body>Quota exceeded</body></html>", None)
    dest = tmp_path / "DS"
    with pytest.raises(BadInput, match="HTML"):
        fetch_entry({"url": f"{base}/d.zip"}, dest, allow_http=True)
    assert list(dest.iterdir()) == []


def test_download_without_card_checksum_is_recorded_unverified(tmp_path, server, capsys):
    base, h = server
    body = b'{"images": []}'
    h.routes["/x.json"] = (200, "application/json", body, None)
    dest = tmp_path / "DS"
    fetch_entry({"url": f"{base}/x.json"}, dest, allow_http=True)
    sha = hashlib.sha256(body).hexdigest()
    out = capsys.readouterr().out
    assert f"WARNING: {dest / 'x.json'}: no checksum on the card; kept as UNVERIFIED, sha256 {sha}" in out
    rec = fetch.read_record(dest / "x.json")
    assert (rec["verified"], rec["sha256"], rec["size"]) == (False, sha, len(body))
    fetch_entry({"url": f"{base}/x.json"}, dest, allow_http=True)
    assert f"x.json: present, unverified (sha256 {sha})" in capsys.readouterr().out and len(h.hits) == 1
    (dest / "x.json").write_bytes(b'{"images": [1]}')  # changed since: fetched again
    fetch_entry({"url": f"{base}/x.json"}, dest, allow_http=True)
    assert "changed since it was downloaded" in capsys.readouterr().out and len(h.hits) == 2
    assert (dest / "x.json").read_bytes() == body


def test_plain_http_is_refused_without_the_flag(tmp_path, server):
    base, h = server
    with pytest.raises(ConfigError, match="refusing a plain-http download .*--allow-http"):
        fetch_entry({"url": f"{base}/d.zip"}, tmp_path / "DS")
    with pytest.raises(ConfigError, match="unsupported URL scheme 'ftp'"):
        fetch_entry({"url": "ftp://example.invalid/d.zip"}, tmp_path / "DS")
    assert h.hits == []


@pytest.mark.parametrize("field", [{"file": "../evil.zip"}, {"file": "/tmp/evil.zip"}, {"extract_to": "../up"}])
def test_card_paths_must_stay_in_the_dataset_folder(tmp_path, field):
    with pytest.raises(ConfigError, match="must"):
        fetch_entry({"url": "https://example.invalid/d.zip", **field}, tmp_path / "DS")


def test_every_card_download_is_https():
    urls = [e["url"] for card in catalog.cards().values() for e in card.get("download", [])]
    assert len(urls) >= 15 and [u for u in urls if not u.startswith("https://")] == []
    bsds = catalog.get_card("BSDS500")["download"][0]["url"]
    assert bsds == "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"


# -- checkpoints without a published hash --------------------------------------------------
PAYLOAD = b"PK\x03\x04" + bytes(range(256)) * 1000


class FakeServer:
    """A fake ``urlopen``: fixed body, content type and announced length; counts requests."""

    def __init__(self, body: bytes, ctype: str = "application/octet-stream", declared: int | None = None):
        self.body, self.ctype, self.declared, self.calls = body, ctype, declared, 0

    def __call__(self, req, timeout=None):
        self.calls += 1
        resp = io.BytesIO(self.body)
        resp.status = 200
        resp.headers = {"Content-Length": str(len(self.body) if self.declared is None else self.declared),
                        "Content-Type": self.ctype}
        resp.getcode = lambda: 200
        return resp


def _unhashed() -> ck.Checkpoint:
    return ck.Checkpoint("unit", "unit-model", "unit_ckpt.pt", "https://example.invalid/unit_ckpt.pt")


@pytest.mark.parametrize("server_, why", [
    (FakeServer(PAYLOAD[:5000], declared=len(PAYLOAD)), f"truncated download: 5000 bytes received, the server "
                                                         f"announced {len(PAYLOAD)}"),
    (FakeServer(b"<html>Rate limit</html>", ctype="text/html"), "HTML page"),
    (FakeServer(b"<!DOCTYPE html><html>Not Found</html>"), "starts with '<'"),
])
def test_bad_checkpoint_download_is_refused_and_not_cached(tmp_path, server_, why):
    with pytest.raises(CheckpointError, match=why):
        ck.download(_unhashed(), tmp_path, progress=False, opener=server_)
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_unhashed_checkpoint_is_reported_unverified_and_rechecked(tmp_path, monkeypatch, capsys):
    import urllib.request

    server_ = FakeServer(PAYLOAD)
    monkeypatch.setattr(urllib.request, "urlopen", server_)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    args = ["models", "download", "sam2.1_hiera_t", "--cache-dir", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    assert f"sam2.1_hiera_t: downloaded, unverified (sha256 {sha})" in capsys.readouterr().out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"sam2.1_hiera_t: present, unverified (sha256 {sha})" in out and ", verified" not in out
    assert server_.calls == 1
    path = tmp_path / "checkpoints" / "sam2.1_hiera_tiny.pt"
    path.write_bytes(PAYLOAD[:1000])  # truncated since its download
    with pytest.raises(CheckpointError, match="changed since it was downloaded"):
        ck.resolve("sam2", None, default="sam2.1_hiera_t", cache=tmp_path)
    assert main(args) == 0
    assert "downloaded, unverified" in capsys.readouterr().out and server_.calls == 2
    assert path.read_bytes() == PAYLOAD and ck.resolve("sam2", None, "sam2.1_hiera_t", tmp_path)[1] == sha


def test_hand_placed_unhashed_checkpoint_is_unverified(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "unit_ckpt.pt").write_bytes(PAYLOAD)
    path, note = ck.ensure(_unhashed(), tmp_path, progress=False, opener=FakeServer(b"unused"))
    assert note == (f"present, unverified (sha256 {hashlib.sha256(PAYLOAD).hexdigest()}): no published hash; "
                    f"no download record (placed by hand?)")


@pytest.mark.parametrize("announced, kept", [(len(PAYLOAD), True), (len(PAYLOAD) + 1, False)])
def test_complete_part_answered_416_is_checked_against_content_range(tmp_path, announced, kept):
    import email.message
    import urllib.error

    def full(req, timeout=None):
        headers = email.message.Message()
        headers["Content-Range"] = f"bytes */{announced}"
        raise urllib.error.HTTPError(req.full_url, 416, "Range Not Satisfiable", headers, None)

    part = tmp_path / "checkpoints" / "unit_ckpt.pt.part"
    part.parent.mkdir()
    part.write_bytes(PAYLOAD)
    if kept:
        assert ck.download(_unhashed(), tmp_path, progress=False, opener=full).read_bytes() == PAYLOAD
    else:
        with pytest.raises(CheckpointError, match=f"the server announced {announced}"):
            ck.download(_unhashed(), tmp_path, progress=False, opener=full)
        assert list(part.parent.iterdir()) == []
