"The distillation stages end to end on tiny data: a tiny teacher, a few random images, two iterations."
import json
import pytest, torch, yaml
from onestepsr.core import write_png
from onestepsr.nets.denoiser import Denoiser, load_denoiser, save_denoiser
from onestepsr.nets.unet import UNet
from onestepsr.schedules import ResShiftSchedule
from onestepsr.train.distill import bench_infer, distill

TINY = {
    'degrade': {'kind': 'bicubic', 'scale': 4, 'crop': 32},
    'disc': {'hr': {'features': 'teacher_encoder', 'hidden': 8, 'vbatch': 0},
             'lr': {'features': 'cnn', 'hidden': 8, 'cnn_channels': [8, 16]}},
    'downsampler': {'kind': 'diffusion', 'channels': 8, 'mult': [1]},
}
RUN = {'iterations': 2, 'batch_size': 2, 'crop': 32, 'lr': 1e-3, 'device': 'cpu', 'log_every': 1}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    "A folder with data/hr, data/pairs, a tiny teacher and a params file, as the pipeline would leave them."
    g = torch.Generator().manual_seed(0)
    for i in range(2): write_png(torch.rand(3, 48, 48, generator=g), tmp_path/f'data/hr/train/img{i}.png')
    for i in range(2):
        hr = torch.rand(3, 32, 32, generator=g)
        write_png(hr, tmp_path/f'data/pairs/test/hr/p{i}.png')
        write_png(torch.nn.functional.avg_pool2d(hr[None], 4)[0], tmp_path/f'data/pairs/test/lr/p{i}.png')
    torch.manual_seed(0)
    teacher = Denoiser(UNet(channels=8, mult=[1, 2], blocks=1, groups=4, patch=2), ResShiftSchedule(T=4, kappa=1.0), 'residual', 0.25)
    save_denoiser(tmp_path/'models/teacher', teacher)
    params = {**TINY,
              'distill': {'recipe': 'colearning', 'results': 'results/distill', **RUN},
              'sinsr': {'recipe': 'sinsr', 'out': 'models/sinsr', 'results': 'results/sinsr', **RUN}}
    (tmp_path/'params.yaml').write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize('section,model', [('distill', 'models/student'), ('sinsr', 'models/sinsr')])
def test_distill_stage_writes_models_and_metrics(workdir, section, model):
    distill('params.yaml', section)
    m = json.loads((workdir/f'results/{section}/metrics.json').read_text())
    assert m['train']['iterations'] == 2
    assert set(m['test']) == {'bicubic', 'teacher_15', 'student_1'}
    assert all(v['psnr'] > 0 for v in m['test'].values())
    student = load_denoiser(workdir/model)
    assert student.extra['recipe'] == ('colearning' if section == 'distill' else 'sinsr')
    assert (workdir/'models/downsampler/model.safetensors').is_file() == (section == 'distill')


def test_distill_stage_refuses_a_mistyped_key(workdir):
    p = yaml.safe_load((workdir/'params.yaml').read_text()); p['distill']['iteratons'] = 3
    (workdir/'params.yaml').write_text(yaml.safe_dump(p))
    with pytest.raises(ValueError, match=r"params.yaml \[distill\]: unknown key 'iteratons'"): distill('params.yaml', 'distill')


def test_distill_stage_names_a_missing_teacher(workdir):
    import shutil; shutil.rmtree(workdir/'models/teacher')
    with pytest.raises(FileNotFoundError, match='models/teacher'): distill('params.yaml', 'distill')


def test_bench_infer_compares_student_and_teacher(workdir):
    r = bench_infer('params.yaml', batch_size=2, lr_size=8, rounds=1)
    assert set(r['images_per_sec']) == {'student_1', 'teacher_4'} and r['speedup'] > 1
