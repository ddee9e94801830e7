"""Downloads against a local HTTP server (with Range support) on 127.0.0.1."""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from graphdyn.data import download as dl
from graphdyn.errors import GraphdynError


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files`` (url path -> bytes); honours ``Range: bytes=N-``.

    ``server.drop_after[path] = n`` announces the full length but closes after n bytes.
    """

    def do_GET(self):  # noqa: N802 (http.server's naming)
        srv = self.server
        rng = self.headers.get("Range")
        srv.log.append((self.path, rng))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if rng is not None:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        cut = srv.drop_after.get(self.path)
        self.wfile.write(payload if cut is None else payload[:cut])
        self.wfile.flush()
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.drop_after, srv.log = {}, {}, []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
    yield srv
    srv.shutdown()
    srv.server_close()


def _npz_bytes(seed: int = 0, frames: int = 40, **extra) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    arrays = {"R": rng.normal(size=(frames, 9, 3)), "z": np.array([6, 6, 8, 1, 1, 1, 1, 1, 1]),
              "E": rng.normal(size=frames), "F": rng.normal(size=(frames, 9, 3))}
    arrays.update(extra)
    np.savez(buf, **arrays)
    return buf.getvalue()


_ASF = b""":version 1.10
:name VICON
:units
  mass 1.0
  length 0.45
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name lhipjoint
     direction 0.6 -0.7 0.3
     length 2.4
     axis 0 0 0  XYZ
  end
:hierarchy
  begin
    root lhipjoint
  end
"""


def _amc(trial: int) -> bytes:
    frames = "".join(f"{k}\nroot {trial} 17.0 0 0 0 0\nlhipjoint 0 0 0\n" for k in range(1, 4))
    return (":FULLY-SPECIFIED\n:DEGREES\n" + frames).encode()


def _serve_md17(server, molecule="ethanol", body=None, legacy=False) -> bytes:
    body = _npz_bytes() if body is None else body
    current, old = dl.MD17_REMOTE[molecule]
    server.files["/" + (old if legacy else current)] = body
    return body


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_md17_download_is_placed_verified_and_recorded(server, tmp_path):
    body = _serve_md17(server)
    paths = dl.download("md17", molecule="ethanol", dest=tmp_path, base_url=server.url)
    assert paths == [tmp_path / "md17" / "ethanol_dft.npz"]
    assert paths[0].read_bytes() == body
    assert not list(tmp_path.rglob("*.part"))
    entry = json.loads((tmp_path / "manifest.json").read_text())["md17/ethanol_dft.npz"]
    assert entry["sha256"] == dl.sha256(paths[0])
    assert entry["url"] == server.url + "md17_ethanol.npz"
    # A second call finds the file in place and sends no request.
    n = len(server.log)
    assert dl.download("md17", molecule="ethanol", dest=tmp_path, base_url=server.url) == paths
    assert len(server.log) == n


def test_md17_falls_back_to_the_older_sgdml_name(server, tmp_path):
    body = _serve_md17(server, "benzene", legacy=True)
    [path] = dl.download("md17", molecule="benzene", dest=tmp_path, base_url=server.url)
    assert path.name == "benzene_dft.npz" and path.read_bytes() == body
    assert [p for p, _ in server.log] == ["/md17_benzene2017.npz", "/benzene2017_dft.npz"]


def test_resume_continues_a_truncated_part_file_with_a_range_request(server, tmp_path):
    body = _serve_md17(server, body=_npz_bytes(frames=400))
    part = tmp_path / "md17" / "ethanol_dft.npz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:5000])
    [remote] = dl.remotes("md17", molecule="ethanol", dest=tmp_path, base_url=server.url)
    seen = []
    path = dl.fetch(remote, tmp_path, progress=lambda *a: seen.append(a))
    assert server.log == [("/md17_ethanol.npz", "bytes=5000-")]
    assert path.read_bytes() == body and not part.exists()
    # Progress counts the bytes already on disk.
    assert seen[-1] == ("ethanol_dft.npz", len(body), len(body)) and seen[0][1] > 5000


def test_a_part_from_another_url_is_not_continued(server, tmp_path):
    body = _serve_md17(server, "benzene", legacy=True)
    part = tmp_path / "md17" / "benzene_dft.npz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 3000)
    (tmp_path / "md17" / "benzene_dft.npz.part.url").write_text(server.url + "md17_benzene2017.npz\n")
    [path] = dl.download("md17", molecule="benzene", dest=tmp_path, base_url=server.url)
    assert path.read_bytes() == body
    assert server.log[-1] == ("/benzene2017_dft.npz", None)
    assert [p.name for p in (tmp_path / "md17").iterdir()] == ["benzene_dft.npz"]


def test_interrupted_transfer_keeps_the_part_and_the_next_run_resumes(server, tmp_path):
    body = _serve_md17(server, body=_npz_bytes(frames=400))
    server.drop_after["/md17_ethanol.npz"] = 7000
    with pytest.raises(GraphdynError, match="interrupted"):
        dl.download("md17", molecule="ethanol", dest=tmp_path, base_url=server.url)
    final = tmp_path / "md17" / "ethanol_dft.npz"
    assert not final.exists()
    assert (tmp_path / "md17" / "ethanol_dft.npz.part").stat().st_size == 7000
    server.drop_after.clear()
    dl.download("md17", molecule="ethanol", dest=tmp_path, base_url=server.url)
    assert server.log[-1] == ("/md17_ethanol.npz", "bytes=7000-")
    assert final.read_bytes() == body


@pytest.mark.parametrize("body, reason", [
    (b"<html>503 Service Unavailable</html>" * 20, "not a readable .npz"),
    (None, "key(s) R missing"),
])
def test_corrupt_download_is_rejected_and_nothing_is_left(server, tmp_path, body, reason):
    if body is None:  # a valid npz without the coordinates
        buf = io.BytesIO()
        np.savez(buf, z=np.array([6, 8]), E=np.zeros(3))
        body = buf.getvalue()
    _serve_md17(server, body=body)
    with pytest.raises(GraphdynError, match="corrupt download rejected") as info:
        dl.download("md17", molecule="ethanol", dest=tmp_path, base_url=server.url)
    assert reason in str(info.value)
    assert list((tmp_path / "md17").iterdir()) == []


def test_a_changed_file_upstream_fails_the_recorded_checksum(server, tmp_path):
    _serve_md17(server, body=_npz_bytes(seed=0))
    [path] = dl.download("md17", molecule="ethanol", dest=tmp_path, base_url=server.url)
    path.unlink()
    _serve_md17(server, body=_npz_bytes(seed=1))
    with pytest.raises(GraphdynError, match="does not match"):
        dl.download("md17", molecule="ethanol", dest=tmp_path, base_url=server.url)
    assert list((tmp_path / "md17").iterdir()) == []


def test_a_locally_damaged_file_is_reported(server, tmp_path):
    _serve_md17(server)
    [path] = dl.download("md17", molecule="ethanol", dest=tmp_path, base_url=server.url)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(GraphdynError, match="checksum differs"):
        dl.download("md17", molecule="ethanol", dest=tmp_path, base_url=server.url)


def test_mocap_walk_fetches_the_23_walk_trials_in_trial_id_order(server, tmp_path):
    trials = dl.MOCAP_TRIALS[35]
    server.files["/35/35.asf"] = _ASF
    for t in trials:
        server.files[f"/35/35_{t:02d}.amc"] = _amc(t)
    paths = dl.download("mocap", subject=35, dest=tmp_path, base_url=server.url)
    assert len(paths) == 24 and paths[0] == tmp_path / "mocap" / "35" / "35.asf"
    files = dl.mocap_trial_files(35, tmp_path)
    assert len(files) == 23 and files == paths[1:]
    # The 17 run/jog/obstacle trials are skipped: id 15 -> 35_16, id 16 -> 35_28.
    assert files[15].name == "35_16.amc" and files[16].name == "35_28.amc" and files[22].name == "35_34.amc"
    assert all(f.exists() for f in files)


def test_mocap_rejects_a_page_that_is_not_an_amc(server, tmp_path):
    server.files["/35/35.asf"] = _ASF
    for t in dl.MOCAP_TRIALS[35]:
        server.files[f"/35/35_{t:02d}.amc"] = _amc(t)
    server.files["/35/35_03.amc"] = b"<html>moved</html>"
    with pytest.raises(GraphdynError, match=r"35_03\.amc.*AMC"):
        dl.download("mocap", subject=35, dest=tmp_path, base_url=server.url)
    assert not (tmp_path / "mocap" / "35" / "35_03.amc").exists()
    assert not (tmp_path / "mocap" / "35" / "35_03.amc.part").exists()


def test_offline_message_says_where_to_get_each_file_and_where_to_put_it(tmp_path):
    base = f"http://127.0.0.1:{_closed_port()}/"
    with pytest.raises(GraphdynError) as info:
        dl.download("md17", molecule="aspirin", dest=tmp_path, base_url=base)
    msg = str(info.value)
    assert "\n" not in msg and "cannot reach" in msg
    assert base + "md17_aspirin.npz" in msg and str(tmp_path / "md17" / "aspirin_dft.npz") in msg
    with pytest.raises(GraphdynError) as info:
        dl.download("mocap", subject=35, dest=tmp_path, base_url=base)
    msg = str(info.value)
    assert "\n" not in msg and base + "35/" in msg and str(tmp_path / "mocap" / "35") in msg
    assert "35.asf and 35_NN.amc for NN = 01-16, 28-34 (24 files)" in msg


def test_a_file_placed_by_hand_is_verified_and_recorded_without_network(tmp_path):
    path = dl.md17_path("toluene", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(_npz_bytes())
    assert dl.download("md17", molecule="toluene", dest=tmp_path, base_url="http://127.0.0.1:9/") == [path]
    entry = json.loads((tmp_path / "manifest.json").read_text())["md17/toluene_dft.npz"]
    assert entry["sha256"] == dl.sha256(path) and entry["url"] is None
    path.write_bytes(b"not an npz")
    (tmp_path / dl.MANIFEST).unlink()
    with pytest.raises(GraphdynError, match="not a readable .npz"):
        dl.download("md17", molecule="toluene", dest=tmp_path, base_url="http://127.0.0.1:9/")


def test_cli_offline_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys):
    from graphdyn.cli.app import main

    base = f"http://127.0.0.1:{_closed_port()}/"
    monkeypatch.setattr(sys, "argv", ["graphdyn", "data", "download", "md17", "--molecule", "ethanol",
                                      "--dest", str(tmp_path), "--base-url", base])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach" in err


def test_data_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(dl.DATA_ENV, str(tmp_path / "d"))
    assert dl.md17_path("aspirin") == tmp_path / "d" / "md17" / "aspirin_dft.npz"
    monkeypatch.delenv(dl.DATA_ENV)
    assert dl.data_dir().name == "graphdyn"


@pytest.mark.parametrize("kwargs, match", [
    (dict(dataset="md17"), "needs --molecule"),
    (dict(dataset="md17", molecule="caffeine"), "unknown MD17 molecule"),
    (dict(dataset="mocap", subject=7), "unknown motion-capture subject 7"),
    (dict(dataset="qm9"), "unknown dataset"),
])
def test_bad_requests_fail_before_any_network_access(kwargs, match, tmp_path):
    with pytest.raises(GraphdynError, match=match):
        dl.download(dest=tmp_path, base_url="http://127.0.0.1:9/", **kwargs)


def test_md17_all_lists_the_eight_molecules(tmp_path):
    files = dl.remotes("md17", molecule="all", dest=tmp_path)
    assert [f.path.name for f in files] == [f"{m}_dft.npz" for m in dl.MD17_REMOTE]
    assert files[1].urls[0] == dl.MD17_URL + "md17_benzene2017.npz"
