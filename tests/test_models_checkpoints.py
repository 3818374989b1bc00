"""Checkpoint registry, hash checks, resumable download, and the `sam-bench models` command."""

from __future__ import annotations

import hashlib
import io
import urllib.error

import pytest

from sam_bench.cli import main
from sam_bench.errors import CheckpointError
from sam_bench.models import checkpoints as ck

PAYLOAD = bytes(range(256)) * 4099  # ~1 MB, not a multiple of the read chunk


def _entry(url: str, payload: bytes = PAYLOAD, **kw) -> ck.Checkpoint:
    return ck.Checkpoint("unit", "unit-model", "unit_ckpt.pth", url,
                         sha256=kw.get("sha256", hashlib.sha256(payload).hexdigest()), md5_prefix=kw.get("md5_prefix"))


def test_official_names_urls_and_hashes():
    for name in ("sam_vit_b", "sam_vit_l", "sam_vit_h"):
        c = ck.get(name)
        assert c.url == f"https://dl.fbaipublicfiles.com/segment_anything/{c.filename}"
        assert c.filename.split("_")[-1].removesuffix(".pth") == c.md5_prefix and len(c.sha256) == 64
    assert ck.get("sam2.1_hiera_b+").url.endswith("/segment_anything_2/092824/sam2.1_hiera_base_plus.pt")
    with pytest.raises(Exception, match="Did you mean sam_vit_h"):
        ck.get("sam_vit_hh")


def test_download_from_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    path = ck.download(_entry(src.as_uri()), tmp_path / "cache", progress=False)
    assert path == tmp_path / "cache" / "checkpoints" / "unit_ckpt.pth" and path.read_bytes() == PAYLOAD
    assert not list(path.parent.glob("*.part"))


class RangeServer:
    """A fake ``urlopen`` that honours ``Range: bytes=N-`` with 206, like an HTTP server."""

    def __init__(self, payload: bytes):
        self.payload, self.ranges = payload, []

    def __call__(self, req, timeout=None):
        rng = req.get_header("Range")
        self.ranges.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = self.payload[start:]
        resp = io.BytesIO(body)
        resp.status = 206 if rng else 200
        resp.headers = {"Content-Length": str(len(body))}
        resp.getcode = lambda: resp.status
        return resp


def test_download_resumes_a_partial_file(tmp_path):
    part = tmp_path / "checkpoints" / "unit_ckpt.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:300_000])
    server = RangeServer(PAYLOAD)
    path = ck.download(_entry("https://example.invalid/unit_ckpt.pth"), tmp_path, progress=False, opener=server)
    assert server.ranges == ["bytes=300000-"] and path.read_bytes() == PAYLOAD and not part.exists()


def test_download_with_wrong_hash_is_refused_and_part_removed(tmp_path):
    entry = _entry("https://example.invalid/x", sha256="0" * 64)
    with pytest.raises(CheckpointError) as exc:
        ck.download(entry, tmp_path, progress=False, opener=RangeServer(PAYLOAD))
    assert "0" * 64 in str(exc.value) and hashlib.sha256(PAYLOAD).hexdigest() in str(exc.value)
    assert not list((tmp_path / "checkpoints").iterdir())


def test_download_offline_is_a_clear_error(tmp_path):
    def offline(req, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    with pytest.raises(CheckpointError, match="offline.*unit_ckpt.pth"):
        ck.download(_entry("https://example.invalid/x"), tmp_path, progress=False, opener=offline)


def test_md5_prefix_check_when_no_sha256(tmp_path):
    f = tmp_path / "a.pth"
    f.write_bytes(PAYLOAD)
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert ck.verify(f, _entry("u", sha256=None, md5_prefix=md5[:6])) == hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(CheckpointError, match=f"expected a hash starting 000000, got {md5}"):
        ck.verify(f, _entry("u", sha256=None, md5_prefix="000000"))


def test_weights_only_load_refuses_pickled_code(tmp_path):
    import pickle

    f = tmp_path / "evil.pth"
    f.write_bytes(pickle.dumps(print))
    with pytest.raises(CheckpointError, match="weights-only"):
        ck.load_state_dict(f)


def test_models_list_and_verify_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SAM_BENCH_CACHE", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "sam_vit_b_01ec64.pth").write_bytes(b"x")
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    row_b = next(line for line in out.splitlines() if "sam_vit_b_01ec64.pth" in line)
    row_h = next(line for line in out.splitlines() if "sam_vit_h_4b8939.pth" in line)
    assert "yes" in row_b and "no" in row_h and "sam2.1_hiera_l" in out
    assert main(["models", "verify", str(tmp_path / "checkpoints" / "sam_vit_b_01ec64.pth")]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err
