"""The `evaluate` stage end to end on tiny pairs and tiny untrained models (their scores are not results): the
shipped `evaluate` params section, the DVC stage as declared in dvc.yaml, external folders, real-world folders,
the faces preset and the `results` command."""
import json, os, shutil, subprocess
from pathlib import Path
import pytest, torch, yaml
import torch.nn.functional as F
from onestepsr.core import read_json, write_png
from onestepsr.evaluate import evaluate
from onestepsr.nets.denoiser import Denoiser, save_denoiser
from onestepsr.nets.unet import UNet
from onestepsr.schedules import ResShiftSchedule, VPSchedule

METHODS = ['bicubic', 'realesrgan', 'teacher_15', 'teacher_1', 'sinsr', 'dfosd_ssim', 'tadsr', 'ours', 'yonos']


@pytest.fixture(autouse=True)
def one_thread():
    "One torch thread: tiny networks run several times faster on a shared CPU."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _write_params(d:Path, root:Path, **evaluate):
    "params.yaml with the repository's `evaluate` section (overridden by `evaluate`) and a degrade scale of 4."
    shipped = yaml.safe_load((root/'params.yaml').read_text())
    ev = {**shipped['evaluate'], 'hub_dir': str(d/'hub'), 'device': 'cpu', 'compare': 2, **evaluate}
    (d/'params.yaml').write_text(yaml.safe_dump({'data': {'preset': None}, 'degrade': {'scale': 4}, 'evaluate': ev}, sort_keys=False))


@pytest.fixture
def workdir(tmp_path, monkeypatch, root):
    "Three 8 -> 32 px pairs, tiny 4-step models where the pipeline puts them, a dvclive log, the shipped params."
    g = torch.Generator().manual_seed(0)
    for i in range(3):
        hr = F.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=32, mode='bilinear')[0]
        write_png(hr, tmp_path/f'data/pairs/test/hr/im{i}.png'); write_png(F.avg_pool2d(hr[None], 4)[0], tmp_path/f'data/pairs/test/lr/im{i}.png')
        write_png(hr.flip(-1), tmp_path/f'ext/im{i}.png')
    torch.manual_seed(0)
    for m in ('teacher', 'student', 'sinsr', 'dfosd', 'tadsr'):
        save_denoiser(tmp_path/'models'/m, Denoiser(UNet(channels=8, mult=[1], blocks=1, groups=4), ResShiftSchedule(T=4, kappa=1.0)))
    save_denoiser(tmp_path/'models/yonos_x4', Denoiser(UNet(channels=8, mult=[1], blocks=1, groups=4), VPSchedule('cosine', T=4), 'v'))
    tsv = tmp_path/'results/distill/live/plots/metrics/train/loss.tsv'; tsv.parent.mkdir(parents=True)
    tsv.write_text('step\tloss\n' + ''.join(f'{i}\t{1 / (i + 1)}\n' for i in range(5)))
    for k, v in (('dl_acc_real', 0.9), ('dl_acc_fake', 0.6), ('dl_acc', 0.75)):   # D_L's accuracy, one panel
        (tsv.parent/f'{k}.tsv').write_text(f'step\t{k}\n' + ''.join(f'{i}\t{v}\n' for i in range(5)))
    st = {s: {'mean': 1.0, 'std': 0.0} for s in ('noise_sigma', 'laplacian_var', 'grad_mean')}
    gap = {s: {'abs': 0.0, 'rel': 0.0} for s in st}
    dom = {'images': 3, 'downsampler': 'diffusion', 'real': st, 'G_start': st, 'G_end': st, 'gap_start': gap, 'gap_end': gap}
    (tmp_path/'results/distill/metrics.json').write_text(json.dumps({'test': {}, 'lr_domain': dom}))
    _write_params(tmp_path, root)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_shipped_params_evaluate_every_method(workdir):
    evaluate('params.yaml')
    out = workdir/'results/evaluate'
    m = read_json(out/'metrics.json')
    assert list(m) == ['test'] and list(m['test']) == METHODS
    assert [m['test'][k]['nfe'] for k in METHODS] == [0, 1, 4, 1, 1, 1, 1, 1, 1]
    assert {k: type(m['test'][k]['psnr']) for k in METHODS} == dict.fromkeys(METHODS, float)
    timing = read_json(out/'timing.json')['test']
    assert min(timing[k]['ms_per_image'] for k in METHODS) > 0, timing
    assert 'ms_per_image' not in m['test']['ours']                         # metrics.json holds what a rerun reproduces
    assert {m['test'][k][x] for k in METHODS for x in ('lpips', 'clipiqa', 'musiq')} == {'unavailable'}
    t = (out/'table.md').read_text()
    assert '## Does the co-learning LR path learn?' in t and "accuracy (real / fake / mean" in t, t
    assert (out/'perception_distortion.png').is_file() and '## Perception-distortion' in t, t
    table = (out/'table.md').read_text()
    assert all(f'| {k} |' in table for k in METHODS)
    header = next(l for l in table.splitlines() if l.startswith('| Method'))
    assert header.split(' | ')[1:6] == ['PSNR↑', 'SSIM↑', 'LPIPS↓', 'CLIPIQA↑', 'MUSIQ↑']
    assert '- `lpips`: no weights' in table and '- `musiq`: no weights' in table
    ci = m['test']['ours']['ci95']['psnr']                                  # 95% bootstrap intervals over the 3 images
    assert ci['lo'] <= m['test']['ours']['psnr'] <= ci['hi'] and f"[{ci['lo']:.2f}, {ci['hi']:.2f}]" in table
    d = m['test']['ours']['diff_vs_bicubic']['psnr']                        # paired difference from the baseline
    assert d['lo'] <= d['diff'] <= d['hi'] and d['significant'] == (not d['lo'] <= 0 <= d['hi'])
    assert 'diff_vs_bicubic' not in m['test']['bicubic'] and '| Method | ΔPSNR↑ | ΔSSIM↑ |' in table
    assert '95% BCa bootstrap interval of the mean over the 3 images' in table
    assert (out/'comparison.png').stat().st_size > 0 and (out/'curves/distill.png').is_file()
    assert sorted(p.name for p in (out/'sr/test/ours').iterdir()) == ['im0.png', 'im1.png', 'im2.png']
    rows = (out/'per_image.csv').read_text().splitlines()
    assert rows[0] == 'set,image,method,psnr,ssim' and len(rows) == 1 + 3 * len(METHODS)


def test_external_folder_joins_the_table(workdir, root):
    _write_params(workdir, root, external={'flipped': str(workdir/'ext')})
    evaluate('params.yaml')
    m = read_json(workdir/'results/evaluate/metrics.json')['test']
    assert list(m)[-1] == 'flipped' and m['flipped']['psnr'] < m['bicubic']['psnr'] and 'nfe' not in m['flipped']
    assert '| flipped |' in (workdir/'results/evaluate/table.md').read_text()


def test_external_folder_problems_are_named_before_anything_runs(workdir, root):
    (workdir/'ext/im0.png').unlink()
    write_png(torch.rand(3, 28, 32), workdir/'ext/im2.png')
    _write_params(workdir, root, external={'flipped': str(workdir/'ext')})
    with pytest.raises(ValueError) as e: evaluate('params.yaml')
    msg = str(e.value)
    assert "method 'flipped': 2 problem(s)" in msg and 'im0.png: missing' in msg and 'im2.png: 32x28, expected 32x32' in msg
    assert not (workdir/'results/evaluate').exists()


def test_missing_model_folder_is_named(workdir):
    shutil.rmtree(workdir/'models/sinsr')
    with pytest.raises(ValueError, match='evaluate.methods.sinsr: models/sinsr: no trained model'): evaluate('params.yaml')


def test_realworld_folder_without_ground_truth(workdir, root):
    g = torch.Generator().manual_seed(1)
    for i, (h, w) in enumerate([(6, 9), (10, 7)]): write_png(torch.rand(3, h, w, generator=g), workdir/f'RealTiny/r{i}.png')
    _write_params(workdir, root, realworld=str(workdir/'RealTiny'), external={'flipped': str(workdir/'ext')})
    evaluate('params.yaml')
    out = workdir/'results/evaluate'
    m = read_json(out/'metrics.json')
    assert list(m) == ['test', 'RealTiny'] and list(m['RealTiny']) == METHODS            # outputs made elsewhere: test pairs only
    assert m['RealTiny']['ours'] == {'clipiqa': 'unavailable', 'musiq': 'unavailable', 'niqe': 'unavailable'}  # NR only
    assert (out/'realworld/RealTiny.png').is_file()
    assert sorted(p.name for p in (out/'sr/RealTiny/bicubic').iterdir()) == ['r0.png', 'r1.png']
    header = next(l for l in (out/'table.md').read_text().splitlines() if l.startswith('| Method'))
    assert header.split(' | ')[1:3] == ['RealTiny CLIPIQA↑', 'RealTiny MUSIQ↑']


def test_faces_preset_reports_table_ii_metrics(workdir, root):
    p = yaml.safe_load((workdir/'params.yaml').read_text()); p['data']['preset'] = 'faces'
    (workdir/'params.yaml').write_text(yaml.safe_dump(p, sort_keys=False))
    evaluate('params.yaml')
    table = (workdir/'results/evaluate/table.md').read_text()
    header = next(l for l in table.splitlines() if l.startswith('| Method'))
    assert header.split(' | ')[1:5] == ['PSNR↑', 'SSIM↑', 'MS-SSIM↑', 'FID↓']
    assert '- `ms_ssim`: MS-SSIM needs at least 176 px' in table and '- `fid`: no weights' in table


def test_results_command(workdir, venv_bin, capsys):
    from onestepsr.evaluate import results
    assert results() == 1 and 'run `make repro`' in capsys.readouterr().err
    t = workdir/'results/evaluate/table.md'; t.parent.mkdir(parents=True); t.write_text('| Method |\n')
    env = {**os.environ, 'PATH': f"{venv_bin}:{os.environ['PATH']}"}
    r = subprocess.run(['onestepsr', 'results'], capture_output=True, text=True, env=env, check=True)
    assert r.stdout == '| Method |\n'


def test_dvc_stage_as_declared(workdir, root, venv_bin):
    "The `evaluate` stage of dvc.yaml runs; `dvc metrics show` lists every method; `dvc plots show` embeds the PNGs."
    stage = yaml.safe_load((root/'dvc.yaml').read_text())['stages']['evaluate']
    (workdir/'dvc.yaml').write_text(yaml.safe_dump({'stages': {'evaluate': stage}}, sort_keys=False))
    P = yaml.safe_load((workdir/'params.yaml').read_text())                 # every stage also depends on the preset keys
    (workdir/'params.yaml').write_text(yaml.safe_dump({'preset': None, 'presets': {}, **P}, sort_keys=False))
    for f in stage['deps']:
        if f.startswith('onestepsr/'): (workdir/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy(root/f, workdir/f)
    env = {**os.environ, 'PATH': f"{venv_bin}:{os.environ['PATH']}", 'DVC_NO_ANALYTICS': '1', 'OMP_NUM_THREADS': '1'}
    dvc = lambda *a: subprocess.run([str(venv_bin/'dvc'), *a], capture_output=True, text=True, env=env, cwd=workdir)
    assert dvc('init', '--no-scm', '-q').returncode == 0
    r = dvc('repro', 'evaluate'); assert r.returncode == 0, r.stdout + r.stderr
    shown = json.loads(dvc('metrics', 'show', '--json').stdout)
    metrics = next(iter(shown.values()))['data']['results/evaluate/metrics.json']['data']
    assert list(metrics['test']) == METHODS and all('psnr' in metrics['test'][k] for k in METHODS)
    r = dvc('plots', 'show', '-o', 'plots_html'); assert r.returncode == 0, r.stdout + r.stderr
    html = (workdir/'plots_html/index.html').read_text()
    assert 'comparison.png' in html and 'distill.png' in html and 'vega' not in html.split('<body')[0].lower()
    assert 'perception_distortion.png' in html
