"""Weight downloads are bounded (size, deadline, stalls), leave nothing behind, and a file
that verifies but does not convert does not stay in the cache."""

from __future__ import annotations

import dataclasses
import http.server
import os
import threading
import time
from pathlib import Path

import pytest
import torch

from reslab.cli import main
from reslab.errors import ReslabError
from reslab.models import spec
from reslab.weights.download import cached_path, fetch_pinned, sha256_file, weights_cache_dir
from reslab.weights.sources import SIZE_MARGIN, SIZE_SLACK, SOURCES, PinnedFile

BODY = bytes(range(256)) * 40  # 10 kB


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("RESLAB_WEIGHTS_MIRROR", raising=False)


def pin(monkeypatch, url: str, sha256: str, source="chenyaofo-cifar10", model="resnet20", size=None) -> PinnedFile:
    pf = PinnedFile(model, url, sha256, "test", size)
    monkeypatch.setitem(SOURCES, source, dataclasses.replace(SOURCES[source], files={model: pf}))
    return pf


class _Handler(http.server.BaseHTTPRequestHandler):
    mode = "whole"

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        if self.mode == "whole":
            self.wfile.write(BODY)
        elif self.mode == "drip":  # one byte every 50 ms: 10 kB would take 8 minutes
            for b in BODY:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.05)
        elif self.mode == "stall":  # headers, then silence
            time.sleep(3)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}/cifar10_resnet20-x.pt"
    srv.shutdown()
    srv.server_close()


def _leftovers() -> list[str]:
    folder = weights_cache_dir() / "chenyaofo-cifar10"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("mode,kwargs,match", [
    ("whole", dict(max_bytes=1000), "announces 10240 bytes"),  # Content-Length above the cap
    ("drip", dict(deadline_s=1.0), "deadline"),
    ("stall", dict(timeout=0.5), "timed out"),
])
def test_downloads_are_bounded(server, monkeypatch, mode, kwargs, match):
    srv, url = server
    monkeypatch.setattr(_Handler, "mode", mode)
    pin(monkeypatch, url, "0" * 64)
    t0 = time.monotonic()
    with pytest.raises(ReslabError, match=f"download failed.*{match}"):
        fetch_pinned("chenyaofo-cifar10", "resnet20", **kwargs)
    assert time.monotonic() - t0 < 3
    assert _leftovers() == []


def test_the_cap_is_the_pinned_size_with_a_margin(server, monkeypatch):
    srv, url = server
    import hashlib

    pf = pin(monkeypatch, url, hashlib.sha256(BODY).hexdigest(), size=100)
    assert pf.max_bytes == int(100 * SIZE_MARGIN) + SIZE_SLACK  # 1 MiB slack: the 10 kB body fits
    assert sha256_file(fetch_pinned("chenyaofo-cifar10", "resnet20")) == pf.sha256
    pf = pin(monkeypatch, url, pf.sha256, size=None)
    assert pf.max_bytes >= 78_053_232  # no size stated: a cap above ResNet-1202's tensors


def test_pinned_sizes_are_the_models_tensor_bytes():
    for src in SOURCES.values():
        for pf in src.files.values():
            if pf.model == "resnet1202":  # seconds to build even on the meta device
                continue
            with torch.device("meta"):
                net = spec(pf.model).build(shortcut=src.shortcut, num_classes=src.num_classes)
            assert pf.size == sum(v.numel() * v.element_size() for v in net.state_dict().values()), (src.name, pf.model)


def test_stale_part_files_are_swept(tmp_path, monkeypatch):
    origin = tmp_path / "cifar10_resnet20-x.pt"
    origin.write_bytes(BODY)
    pf = pin(monkeypatch, origin.as_uri(), sha256_file(origin))
    folder = cached_path(SOURCES["chenyaofo-cifar10"], pf).parent
    folder.mkdir(parents=True)
    dead = folder / f".{pf.filename}.{(1 << 22) + 1}.part"  # above pid_max: no such process
    dead.write_bytes(b"half")
    live = folder / f".other.{os.getpid()}.part"  # this process's: in use, kept
    live.write_bytes(b"in use")
    fetch_pinned("chenyaofo-cifar10", "resnet20")
    assert not dead.exists() and live.exists()


def test_a_file_that_verifies_but_does_not_convert_leaves_the_cache(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "cifar10_resnet20-x.pt"
    torch.save({"not": torch.zeros(1)}, bad)  # the pinned hash matches, the content is no chenyaofo net
    pin(monkeypatch, bad.as_uri(), sha256_file(bad))
    assert main(["weights", "import", "chenyaofo-cifar10", "resnet20"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "not a chenyaofo" in errors[0]
    assert _leftovers() == []
    assert bad.exists()  # the publisher's copy (here, the origin) is not touched
