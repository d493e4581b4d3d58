"The `url` data source against a local HTTP server (127.0.0.1 only) that supports Range requests, and the stages from the CLI."
import hashlib, http.server, io, subprocess, tarfile, threading, urllib.error, zipfile
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from onestepsr.data import DataConfig, download, prepare_images, unpack


class _Handler(http.server.BaseHTTPRequestHandler):
    "Serves the server's `files` (name -> bytes); honours `Range: bytes=N-`; can drop the connection midway once."
    def do_GET(self):
        srv = self.server; name = self.path.lstrip('/')
        if name not in srv.files: self.send_error(404); return
        data, rng = srv.files[name], self.headers.get('Range')
        srv.requests.append(rng)
        start = int(rng.split('=')[1].split('-')[0]) if rng and srv.ranges else 0
        body = data[start:]
        self.send_response(206 if start else 200)
        if start: self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
        self.send_header('Content-Length', str(len(body))); self.end_headers()
        if srv.cut_after is not None:  # send part of the body, then hang up
            self.wfile.write(body[:srv.cut_after]); self.wfile.flush(); srv.cut_after = None; self.close_connection = True; return
        self.wfile.write(body)
    def log_message(self, *a): pass


@pytest.fixture
def server():
    "A local HTTP server in a thread, stopped after the test."
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    srv.files, srv.requests, srv.cut_after, srv.ranges = {}, [], None, True
    srv.timeout = 5
    t = threading.Thread(target=srv.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True); t.start()
    srv.url = f'http://127.0.0.1:{srv.server_address[1]}/'
    try: yield srv
    finally: srv.shutdown(); srv.server_close(); t.join(5)


def _png(seed, size=(48, 40)):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format='PNG')
    return buf.getvalue()


def _zip(n=5, extra=()):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        for i in range(n): z.writestr(f'HR/{i:04d}.png', _png(i))
        for name, data in extra: z.writestr(name, data)
    return buf.getvalue()


def _sha(b): return hashlib.sha256(b).hexdigest()


def test_url_source_prepares_a_split(server, tmp_path):
    arc = _zip(5, extra=[('HR/broken.png', b'not a png')]); server.files['hr.zip'] = arc
    cfg = DataConfig(source='url', url=server.url + 'hr.zip', sha256=_sha(arc), downloads=str(tmp_path/'dl'), min_size=32, test=1, val=1)
    with pytest.warns(UserWarning, match='broken.png'):
        m = prepare_images(cfg, tmp_path/'hr', progress=False)
    assert m['counts'] == {'train': 3, 'val': 1, 'test': 1, 'skipped': 1}, m['counts']
    assert (tmp_path/'dl/hr.zip').read_bytes() == arc
    names = sorted(p.name for p in (tmp_path/'hr').rglob('*.png'))
    assert names == [f'HR__{i:04d}.png' for i in range(5)], names
    # a second run neither downloads nor unpacks again
    n = len(server.requests)
    with pytest.warns(UserWarning, match='broken.png'): prepare_images(cfg, tmp_path/'hr', progress=False)
    assert len(server.requests) == n, server.requests


def test_download_resumes_with_range(server, tmp_path):
    arc = _zip(8); server.files['hr.zip'] = arc; server.cut_after = len(arc) // 3
    with pytest.raises(OSError, match=rf'download incomplete \({len(arc) // 3} of {len(arc)} bytes\); run again to resume'):
        download(server.url + 'hr.zip', tmp_path, _sha(arc), timeout=5, progress=False)
    part = tmp_path/'hr.zip.part'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['hr.zip.part']
    have = part.stat().st_size
    assert have == len(arc) // 3, (have, len(arc))
    p = download(server.url + 'hr.zip', tmp_path, _sha(arc), timeout=5, progress=False)
    assert server.requests == [None, f'bytes={have}-'], server.requests   # the second request asked only for the rest
    assert p.read_bytes() == arc and not part.exists()


def test_download_restarts_when_range_is_ignored(server, tmp_path):
    arc = _zip(3); server.files['a.zip'] = arc; server.ranges = False
    (tmp_path/'a.zip.part').write_bytes(b'garbage')
    assert download(server.url + 'a.zip', tmp_path, _sha(arc), timeout=5, progress=False).read_bytes() == arc


def test_download_rejects_a_bad_checksum(server, tmp_path):
    server.files['a.zip'] = _zip(2)
    with pytest.raises(ValueError, match='sha256 mismatch: expected 0000'):
        download(server.url + 'a.zip', tmp_path, '0' * 64, timeout=5, progress=False)
    assert not (tmp_path/'a.zip').exists()                 # nothing half-trusted left behind
    with pytest.warns(UserWarning, match='no sha256 given'):
        download(server.url + 'a.zip', tmp_path, '', timeout=5, progress=False)


def test_download_missing_file_is_an_error(server, tmp_path):
    with pytest.raises(urllib.error.HTTPError, match='HTTP Error 404: Not Found'):
        download(server.url + 'nope.zip', tmp_path, timeout=5, progress=False)
    assert list(tmp_path.iterdir()) == []                  # nothing written for a missing file


def test_unpack_tar_and_refuse_escaping_members(tmp_path):
    with tarfile.open(tmp_path/'a.tar.gz', 'w:gz') as t:
        for i in range(2):
            data = _png(i); info = tarfile.TarInfo(f'x/{i}.png'); info.size = len(data); t.addfile(info, io.BytesIO(data))
    names = sorted(p.name for p in unpack(tmp_path/'a.tar.gz').rglob('*.png'))
    assert names == ['0.png', '1.png'], names
    with zipfile.ZipFile(tmp_path/'bad.zip', 'w') as z: z.writestr('../evil.png', _png(0))
    with pytest.raises(ValueError, match=r"member '\.\./evil\.png' would be written outside"):
        unpack(tmp_path/'bad.zip')
    assert not (tmp_path/'evil.png').exists()
    (tmp_path/'c.zip').write_bytes(b'not an archive')
    with pytest.raises(ValueError, match='c.zip: not a zip or tar archive'):
        unpack(tmp_path/'c.zip')


def test_stages_from_the_cli(tmp_path, venv_bin):
    (tmp_path/'src').mkdir()
    for i in range(4): (tmp_path/f'src/p{i}.png').write_bytes(_png(i, (72, 72)))
    (tmp_path/'params.yaml').write_text(f"data:\n  source: folder\n  folder: {tmp_path/'src'}\n  min_size: 64\n  test: 1\n  val: 1\n"
                                        "degrade:\n  crop: 64\n  val_crops: 2\n  test_crops: 2\n")
    run = lambda *a: subprocess.run([str(venv_bin/'onestepsr'), *a], capture_output=True, text=True, cwd=tmp_path)
    r = run('prepare', '--out', 'hr')
    assert r.returncode == 0, r.stderr
    r = run('degrade', '--hr', 'hr', '--out', 'pairs')
    assert r.returncode == 0, r.stderr
    lrs = sorted(p.name for p in (tmp_path/'pairs/test/lr').glob('*.png'))
    assert len(lrs) == 2, lrs
    first = {p: p.read_bytes() for p in (tmp_path/'pairs').rglob('*.png')}
    r = run('degrade', '--hr', 'hr', '--out', 'pairs')
    assert r.returncode == 0, r.stderr
    assert first == {p: p.read_bytes() for p in (tmp_path/'pairs').rglob('*.png')}
    (tmp_path/'params.yaml').write_text("data:\n  source: folder\n  folder: nowhere\n")
    r = run('prepare', '--out', 'hr2')
    assert r.returncode != 0 and 'nowhere: image folder not found' in r.stderr, (r.returncode, r.stderr)


def test_cli_refuses_unknown_or_mistyped_sections(tmp_path, venv_bin):
    "A misspelt top-level section, or a bad value in any section, stops a stage before it writes anything."
    run = lambda *a: subprocess.run([str(venv_bin/'onestepsr'), *a], capture_output=True, text=True, cwd=tmp_path)
    (tmp_path/'params.yaml').write_text("data:\n  source: bundled\nevalute:\n  split: test\n")
    r = run('prepare', '--out', 'hr')
    assert r.returncode != 0 and "unknown section 'evalute'" in r.stderr, (r.returncode, r.stderr)
    assert not (tmp_path/'hr').exists()
    (tmp_path/'params.yaml').write_text("data:\n  source: bundled\ndegrade:\n  crop: big\n")
    r = run('prepare', '--out', 'hr')
    assert r.returncode != 0 and "[degrade].crop: expected int, got 'big'" in r.stderr, (r.returncode, r.stderr)
    assert not (tmp_path/'hr').exists()
