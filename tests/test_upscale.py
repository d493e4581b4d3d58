"""`onestepsr upscale` end to end through the console command, on tiny untrained models (their outputs are no
results): exit statuses, a corrupt file reported by name, existing outputs kept, an empty folder, a non-image file,
RGBA / grayscale / 16-bit / EXIF inputs, and pickled weights refused."""
import os, pickle, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from onestepsr.testing import tiny_models
from onestepsr.upscale import Upsampler, read_planes, write_planes


@pytest.fixture(autouse=True)
def one_thread():
    "One torch thread: tiny networks run several times faster on a shared CPU."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cli(*args, cwd):
    "Run `onestepsr upscale ARGS` in a fresh process; (exit status, stdout + stderr)."
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(__file__).resolve().parents[1])}
    code = 'import sys; from onestepsr.cli import main; sys.exit(main())'
    r = subprocess.run([sys.executable, '-c', code, 'upscale', *map(str, args)], cwd=cwd, env=env,
                       capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


@pytest.fixture
def folder(tmp_path):
    "A model and a folder of inputs of every kind, with one corrupt file."
    tiny_models(tmp_path, ('student',), T=4)
    src = tmp_path / 'in'
    write_planes(np.full((20, 24, 4), 200, np.uint8), src / 'rgba.png')
    write_planes(np.full((20, 24, 1), 90, np.uint8), src / 'gray.png')
    write_planes((np.random.default_rng(0).random((20, 24, 3)) * 65535).astype(np.uint16), src / 'deep.png')
    im = Image.fromarray(np.zeros((20, 24, 3), np.uint8))
    ex = im.getexif()
    ex[0x0112] = 6
    (src / 'sub').mkdir()
    im.save(src / 'sub/rot.jpg', exif=ex)
    (src / 'corrupt.jpg').write_bytes(b'\xff\xd8\xff\xe0' + bytes(200))
    return tmp_path


def test_folder(folder):
    rc, out = _cli(folder / 'in', '-o', folder / 'out', '--model', folder / 'student', '--device', 'cpu',
                   '--color-fix', 'wavelet', cwd=folder)
    assert rc == 1 and 'corrupt.jpg' in out and '1 failed' in out and '4 written' in out, (rc, out)
    o = folder / 'out'
    assert read_planes(o / 'rgba.png').shape == (80, 96, 4) and (read_planes(o / 'rgba.png')[..., 3] == 200).all()
    assert read_planes(o / 'gray.png').shape == (80, 96, 1)
    assert read_planes(o / 'deep.png').dtype == np.uint16
    assert read_planes(o / 'sub/rot.png').shape == (96, 80, 3)  # orientation 6: shown rotated
    before = (o / 'gray.png').read_bytes()
    write_planes(np.zeros((80, 96, 1), np.uint8), o / 'gray.png')
    rc, out = _cli(folder / 'in/gray.png', '-o', o, '--model', folder / 'student', '--device', 'cpu', cwd=folder)
    assert rc == 0 and 'exists, skipped' in out and (read_planes(o / 'gray.png') == 0).all(), (rc, out)
    rc, out = _cli(folder / 'in/gray.png', '-o', o, '--model', folder / 'student', '--overwrite', cwd=folder)
    assert rc == 0 and (o / 'gray.png').read_bytes() == before, (rc, out)


def test_bad_inputs(folder):
    (folder / 'empty').mkdir()
    (folder / 'notes.png').write_text('not an image')
    rc, out = _cli(folder / 'empty', '-o', folder / 'out', '--model', folder / 'student', cwd=folder)
    assert rc == 2 and 'empty: no image files' in out, (rc, out)
    rc, out = _cli(folder / 'notes.png', '-o', folder / 'out', '--model', folder / 'student', cwd=folder)
    assert rc == 1 and 'notes.png: not an image' in out and '1 failed' in out, (rc, out)
    rc, out = _cli(folder / 'in', '-o', folder / 'in', '--model', folder / 'student', '--overwrite', cwd=folder)
    assert rc == 1 and 'is an input' in out, (rc, out)
    rc, out = _cli(folder / 'in', '-o', folder / 'out2', cwd=folder)  # models/student is absent here: the packaged one
    assert rc == 1 and 'using the co-learning student shipped with the package' in out, (rc, out)  # 1: the corrupt file
    assert sorted(p.name for p in (folder / 'out2').rglob('*.png')) == ['deep.png', 'gray.png', 'rgba.png', 'rot.png']


def test_the_package_ships_a_default_model():
    from onestepsr.nets.denoiser import load_denoiser
    from onestepsr.upscale import PACKAGED
    info = load_denoiser(PACKAGED).extra['packaged']
    assert len(info['commit']) == 40 and info['dtype'] == 'float16', info
    assert abs(info['test_psnr_y']['float16'] - info['test_psnr_y']['float32']) < 0.05, info


def test_round_trip_and_pickle(tmp_path):
    tiny_models(tmp_path, ('student',), T=4)
    up = Upsampler.from_pretrained(tmp_path / 'student', tile=8, overlap=2)
    for p in up.model.net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    img = torch.rand(3, 20, 24)
    up.save_pretrained(tmp_path / 'copy')
    assert torch.equal(Upsampler.from_pretrained(tmp_path / 'copy', tile=8, overlap=2)(img), up(img))
    whole, one = Upsampler(up.model, tile=0)(img), Upsampler(up.model, tile=32)(img)
    assert (whole - one).abs().mean() < 1e-3, (whole - one).abs().mean()
    ran = tmp_path / 'ran'

    class Evil:
        def __reduce__(self):
            return (Path.touch, (ran,))

    (tmp_path / 'copy/model.safetensors').write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ValueError, match='not a safetensors file'):
        Upsampler.from_pretrained(tmp_path / 'copy')
    assert not ran.exists()
