"The `teacher` stage end to end on tiny data: a few random images, a tiny UNet, a few iterations."
import json
import pytest, torch, yaml
from onestepsr.core import write_png
from onestepsr.nets.denoiser import load_denoiser
from onestepsr.train.teacher import teacher


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    "data/hr (train split), data/pairs (val and test) and a params file with tiny sections."
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        write_png(torch.rand(3, 40, 40, generator=g), tmp_path/f'data/hr/train/img{i}.png')
    for split in ('val', 'test'):
        for i in range(2):
            hr = torch.rand(3, 32, 32, generator=g)
            write_png(hr, tmp_path/f'data/pairs/{split}/hr/p{i}.png')
            write_png(torch.nn.functional.avg_pool2d(hr[None], 4)[0], tmp_path/f'data/pairs/{split}/lr/p{i}.png')
    P = {'schedule': {'kind': 'resshift', 'T': 4, 'kappa': 1.0},
         'unet': {'channels': 8, 'mult': [1, 2], 'blocks': 1, 'groups': 4, 'patch': 2, 'attn_levels': []},
         'degrade': {'kind': 'bicubic', 'scale': 4, 'crop': 32},
         'teacher': {'crop': 32, 'batch_size': 2, 'iterations': 4, 'warmup': 2, 'val_every': 2, 'log_every': 2,
                     'eval_batch': 2, 'device': 'cpu', 'precond': 'resshift'}}
    (tmp_path/'params.yaml').write_text(yaml.safe_dump(P))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_teacher_stage_trains_saves_and_scores(workdir):
    teacher('params.yaml')
    m = json.loads((workdir/'results/teacher/metrics.json').read_text())
    assert (m['train']['iterations'], m['train']['stopped_by']) == (4, 'iterations')
    assert list(m['test']) == ['bicubic', 'deterministic', 'ancestral', 'x0']
    assert 0 < m['sigma_data'] < 1, m['sigma_data']
    model = load_denoiser(workdir/'models/teacher')
    assert (model.schedule.T, model.extra['iterations']) == (4, 4)
    assert sum(q.numel() for q in model.parameters()) == m['net']['params']
    rows = [r.split('\t') for r in (workdir/'results/teacher/live/plots/metrics/val/psnr_x0.tsv').read_text().splitlines()]
    assert [int(r[rows[0].index('step')]) for r in rows[1:]] == [2, 4], rows


def test_teacher_stage_is_reproducible(workdir):
    teacher('params.yaml')
    first = json.loads((workdir/'results/teacher/metrics.json').read_text())
    teacher('params.yaml')
    second = json.loads((workdir/'results/teacher/metrics.json').read_text())
    assert first == second
