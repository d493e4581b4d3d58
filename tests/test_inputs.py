"Bad input at every entry point (issue #15 item 6): one line naming the file or key, a non-zero exit, nothing lost."
import errno, json, os, pickle, struct, subprocess, sys, zlib
from pathlib import Path
import numpy as np, pytest, torch, yaml
from PIL import Image
import onestepsr.files
from onestepsr.cli import check_params_file, main
from onestepsr.evaluate import load_images
from onestepsr.nets.denoiser import load_denoiser, save_denoiser
from onestepsr.testing import tiny_models

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys, *argv):
    "`onestepsr ARGV` in this process: (exit status, stderr)."
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def _params(tmp_path, **sections):
    p = tmp_path / 'params.yaml'
    p.write_text(yaml.safe_dump(sections))
    return p


def _bomb(path):
    "A PNG whose header claims 30000 x 30000 pixels (a decompression bomb), with next to no data."
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    ihdr = struct.pack('>IIBBBBB', 30000, 30000, 8, 2, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64))
                     + chunk(b'IEND', b''))


@pytest.fixture
def images(tmp_path):
    "A data folder with three good photos, grayscale, CMYK and 16-bit ones, and four unusable files."
    d, rng = tmp_path / 'imgs', np.random.default_rng(0)
    d.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(d / f'good{i}.png')
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(d / 'gray.png')
    Image.new('CMYK', (32, 32), (0, 255, 255, 0)).save(d / 'cmyk.jpg')
    Image.fromarray(rng.integers(0, 65536, (32, 32), dtype=np.uint16)).save(d / 'deep16.png')
    good = (d / 'good0.png').read_bytes()
    (d / 'truncated.png').write_bytes(good[: len(good) // 2])
    (d / 'corrupt.jpg').write_bytes(b'\xff\xd8\xff\xe0' + os.urandom(300))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / 'tiny.png')
    _bomb(d / 'bomb.png')
    return d


BAD = ('truncated.png', 'corrupt.jpg', 'tiny.png', 'bomb.png')


def test_prepare_skips_bad_images_by_name_and_counts_them(images, tmp_path, capsys):
    p = _params(tmp_path, data={'source': 'folder', 'folder': str(images), 'min_size': 16, 'val': 1, 'test': 1})
    rc, err = _run(capsys, 'prepare', '--params', p, '--out', tmp_path / 'hr')
    assert rc == len(BAD), err  # the exit status says how many were skipped
    m = json.loads((tmp_path / 'hr' / 'manifest.json').read_text())
    assert m['counts']['skipped'] == len(BAD)
    assert sorted(Path(s['origin']).name for s in m['skipped']) == sorted(BAD)
    for name in BAD: assert name in err, (name, err)
    reasons = {Path(s['origin']).name: s['reason'] for s in m['skipped']}
    assert 'decompression bomb' in reasons['bomb.png'] and 'smaller than the minimum size' in reasons['tiny.png']
    assert sum(m['counts'][k] for k in ('train', 'val', 'test')) == 6  # gray, CMYK and 16-bit are used


def test_evaluate_realworld_skips_bad_images_by_name(images, capsys):
    skipped = []
    got = load_images(images, skipped)
    assert sorted(got) == sorted(['good0.png', 'good1.png', 'good2.png', 'gray.png', 'cmyk.jpg', 'deep16.png',
                                  'tiny.png'])  # no size floor for real-world LR inputs
    assert sorted(Path(s.split(':')[0]).name for s in skipped) == sorted(set(BAD) - {'tiny.png'})
    assert all(got[k].shape[0] == 3 for k in got)


def test_empty_folder_is_refused_naming_it(tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    p = _params(tmp_path, data={'source': 'folder', 'folder': str(tmp_path / 'empty')})
    rc, err = _run(capsys, 'prepare', '--params', p, '--out', tmp_path / 'hr')
    assert rc == 1 and str(tmp_path / 'empty') in err and 'holds no images' in err, err
    assert len(err.strip().splitlines()) == 1, err
    with pytest.raises(FileNotFoundError, match='empty: no images'): load_images(tmp_path / 'empty', [])


@pytest.mark.parametrize('sections, says', [
    ({'data': {'foldr': 'x'}}, "[data]: unknown key 'foldr'"),
    ({'dta': {'folder': 'x'}}, "unknown section 'dta'"),
    ({'teacher': {'iterations': 'many'}}, "[teacher].iterations: expected int, got 'many'"),
    ({'teacher': {'lr': -1}}, '[teacher].lr: -1.0 is out of range (must be > 0)'),
    ({'teacher': {'iterations': -5}}, '[teacher].iterations: -5 is out of range (must be >= 0)'),
    ({'teacher': {'lr': 'fast'}}, "[teacher].lr: expected float, got 'fast'"),
])
def test_bad_params_key_is_named_in_one_line(tmp_path, capsys, sections, says):
    p = _params(tmp_path, **sections)
    rc, err = _run(capsys, 'teacher', '--params', p)
    assert rc == 1, err
    assert err.startswith(f'onestepsr teacher: error: {p}') and says in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_yaml_scientific_lr_is_a_float(tmp_path):
    p = tmp_path / 'params.yaml'
    p.write_text('teacher:\n  lr: 1e-3\n  lr_final: 5E-5\n')  # YAML 1.1 reads both as strings
    check_params_file(str(p))
    from onestepsr.core import load_section
    assert load_section(p, 'teacher').lr == 0.001


def test_traceback_only_when_asked(tmp_path):
    p = _params(tmp_path, teacher={'lr': -1})
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    code = 'import sys; from onestepsr.cli import main; sys.exit(main())'
    run = lambda *a: subprocess.run([sys.executable, '-c', code, 'teacher', '--params', str(p), *a], env=env,
                                    capture_output=True, text=True, cwd=tmp_path)
    r = run()
    assert r.returncode == 1 and r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr
    assert 'lr: -1.0 is out of range' in r.stderr
    r = run('--traceback')
    assert r.returncode == 1 and 'Traceback' in r.stderr and 'ParamsError' in r.stderr, r.stderr


def _torch_save(f): torch.save({'w': torch.ones(3)}, f)


@pytest.mark.parametrize('write, says', [
    (lambda f: f.write_bytes(os.urandom(2048)), 'not a safetensors file'),
    (lambda f: f.write_bytes(pickle.dumps({'w': [1.0]})), 'a pickle file, not a safetensors file'),
    (_torch_save, 'a torch.save (zip) file'),
    (lambda f: f.write_bytes(b''), 'empty file'),
    (lambda f: f.write_bytes(f.read_bytes()[: f.stat().st_size // 2]), 'truncated'),
])
def test_bad_checkpoint_file_is_named(tmp_path, capsys, write, says):
    tiny_models(tmp_path, ('student',), T=4)
    f = tmp_path / 'student' / 'model.safetensors'
    write(f)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / 'in.png')
    rc, err = _run(capsys, 'upscale', tmp_path / 'in.png', '--model', tmp_path / 'student', '-o', tmp_path / 'out')
    assert rc != 0 and f'{f}: ' in err and says in err, err
    assert len(err.strip().splitlines()) == 1, err
    if 'pickle' in says or 'torch.save' in says: assert '`onestepsr import`' in err
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())


def test_missing_checkpoint_is_named(tmp_path, capsys):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / 'in.png')
    rc, err = _run(capsys, 'upscale', tmp_path / 'in.png', '--model', tmp_path / 'nope', '-o', tmp_path / 'out')
    assert rc != 0 and str(tmp_path / 'nope') in err and 'no trained model' in err, err


def test_foreign_checkpoint_names_the_keys(tmp_path):
    tiny_models(tmp_path, ('a',), T=4)
    f = tmp_path / 'a' / 'model.safetensors'
    onestepsr.files.save_checkpoint(tmp_path / 'a', {'G': torch.nn.Linear(3, 2)}, json.loads(
        (tmp_path / 'a' / 'config.json').read_text()))                     # another network's weights, same config
    with pytest.raises(ValueError, match=f"{f}: holds no 'net' weights \\(it holds: G\\)"):
        load_denoiser(tmp_path / 'a')
    tiny_models(tmp_path, ('a',), T=4)
    sd = {k: v for k, v in load_denoiser(tmp_path / 'a').net.state_dict().items()}
    k0 = next(iter(sd))
    onestepsr.files.save_checkpoint(tmp_path / 'a', {'net': {**sd, k0: torch.zeros(1), 'extra.w': torch.zeros(2)}},
                                    json.loads((tmp_path / 'a' / 'config.json').read_text()))
    with pytest.raises(ValueError) as e: load_denoiser(tmp_path / 'a')
    msg = str(e.value)
    assert msg.startswith(f"{f}: the 'net' weights do not fit") and 'unexpected extra.w' in msg and k0 in msg, msg


def test_full_disk_while_writing_a_checkpoint_keeps_the_old_one(tmp_path, monkeypatch):
    tiny_models(tmp_path, ('m',), T=4)
    before = {k: v.clone() for k, v in load_denoiser(tmp_path / 'm').net.state_dict().items()}
    def full(sd, tmp):
        Path(tmp).write_bytes(b'part of a file')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(onestepsr.files, 'save_file', full)
    model = load_denoiser(tmp_path / 'm')
    for p in model.net.parameters(): p.data.add_(1)
    with pytest.raises(OSError, match=f"{tmp_path / 'm' / 'model.safetensors'}: could not be written "
                                      r"\(No space left on device\); the previous file is kept"):
        save_denoiser(tmp_path / 'm', model)
    monkeypatch.undo()
    after = load_denoiser(tmp_path / 'm').net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert sorted(p.name for p in (tmp_path / 'm').iterdir()) == ['config.json', 'model.safetensors']


def test_bench_and_evaluate_check_the_output_folder_first(tmp_path, capsys):
    (tmp_path / 'file').write_text('a file where a folder should be')
    rc, err = _run(capsys, 'bench', 'degrade', '--out', tmp_path / 'file' / 'bench')
    assert rc == 1 and f"{tmp_path / 'file' / 'bench'}: output folder is not writable" in err, err
    p = _params(tmp_path, degrade={'scale': 4}, evaluate={'pairs': str(tmp_path / 'no-pairs')})
    rc, err = _run(capsys, 'evaluate', '--params', p, '--out', tmp_path / 'file' / 'eval')
    assert rc == 1 and f"{tmp_path / 'file' / 'eval'}: output folder is not writable" in err, err  # before the pairs
