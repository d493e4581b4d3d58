"""`onestepsr demo` served for real on 127.0.0.1 (a free port, a background thread) with a tiny untrained model
(its outputs are no results): the page answers with HTML, and Gradio's HTTP client upscales a 16 x 12 PNG to
64 x 48 through the `/upscale` endpoint, with the slider's pair; a non-loopback host and a missing model are refused
through the console command."""
import os, socket, subprocess, sys
from pathlib import Path
import httpx, pytest, torch
from gradio_client import Client, handle_file
from PIL import Image
from onestepsr.demo import build_demo, serve
from onestepsr.testing import tiny_models


def _open(p) -> tuple:
    "(size, format, the centre pixel as RGB) of an image file, closed after."
    with Image.open(p) as im:
        return im.size, im.format, im.convert('RGB').getpixel((im.width // 2, im.height // 2))


def _free_port() -> int:
    "A port nothing listens on now."
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    "The demo with two tiny models, running on 127.0.0.1 until the tests of this module are done."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp('demo')
    tiny_models(d, ('student', 'teacher'), T=4)
    port = _free_port()
    app = serve(build_demo({'student': str(d / 'student'), 'teacher': str(d / 'teacher')}, 'cpu'), port=port,
                block=False)
    yield f'http://127.0.0.1:{port}/', d
    app.close()
    torch.set_num_threads(n)


def test_page_answers_with_html(served):
    url, _ = served
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200 and 'text/html' in r.headers['content-type'], (r.status_code, r.headers)
    assert '<html' in r.text.lower() and 'onestepsr demo' in r.text, r.text[:500]


def test_upscale_through_the_http_api(served):
    url, d = served
    Image.new('RGB', (16, 12), (200, 30, 30)).save(d / 'in.png')
    client = Client(url, verbose=False)
    out, pair = client.predict(handle_file(d / 'in.png'), 'teacher', 4, 0, 'wavelet', api_name='/upscale')
    assert _open(out)[:2] == ((64, 48), 'PNG'), out
    (lo_size, _, lo), (hi_size, _, _) = _open(pair[0]), _open(pair[1])
    assert lo_size == hi_size == (64, 48), pair
    assert lo == (200, 30, 30), lo  # the slider's left image is the input, enlarged


def test_errors_shown_not_crashing(served):
    url, d = served
    Image.new('RGB', (16, 12)).save(d / 'in.png')
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match='not in the list of choices'):  # the page offers 1 or T = 4 steps
        client.predict(handle_file(d / 'in.png'), 'student', 2, 128, 'none', api_name='/upscale')
    with pytest.raises(Exception, match='not in the list of choices'):  # only the models offered, no paths
        client.predict(handle_file(d / 'in.png'), '/etc', 1, 128, 'none', api_name='/upscale')
    out, _ = client.predict(handle_file(d / 'in.png'), 'student', 1, 128, 'adain', api_name='/upscale')
    assert _open(out)[0] == (64, 48)  # the server still answers


def _cli(*args, cwd):
    "Run `onestepsr demo ARGS` in a fresh process; (exit status, stdout + stderr)."
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(__file__).resolve().parents[1])}
    code = 'import sys; from onestepsr.cli import main; sys.exit(main())'
    r = subprocess.run([sys.executable, '-c', code, 'demo', *map(str, args)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_cli_refuses_remote_host_and_missing_model(tmp_path):
    rc, out = _cli('--host', '0.0.0.0', cwd=tmp_path)
    assert rc == 2 and '0.0.0.0: not a loopback address' in out, (rc, out)
    rc, out = _cli(cwd=tmp_path)  # no models/ here
    assert rc == 2 and 'no trained model in models/student' in out, (rc, out)
    rc, out = _cli('--model', tmp_path / 'none', cwd=tmp_path)
    assert rc == 2 and 'none: no trained model here' in out, (rc, out)
