"The distillation stages end to end on tiny data: a tiny teacher, a few random images, two iterations."
import json, shutil
import pytest, yaml
from onestepsr.bench import bench_infer, bench_train
from onestepsr.core import ParamsError
from onestepsr.infer import bicubic_upscaler, load_pairs, score_pairs
from onestepsr.nets.denoiser import load_denoiser
from onestepsr.testing import tiny_study
from onestepsr.train.distill import distill


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    "A folder with data/hr, data/pairs, a tiny teacher and a params file, as the pipeline would leave them."
    tiny_study(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize('section,model', [('distill', 'models/student'), ('sinsr', 'models/sinsr')])
def test_distill_stage_writes_models_and_metrics(workdir, section, model):
    distill('params.yaml', section)
    m = json.loads((workdir/f'results/{section}/metrics.json').read_text())
    assert (m['train']['iterations'], m['train']['stopped_by']) == (2, 'iterations')
    assert sorted(m['test']) == ['bicubic', 'student_1', 'teacher_4']
    bicubic = score_pairs(bicubic_upscaler(4), load_pairs('data/pairs', 'test', 4))['mean']
    assert m['test']['bicubic'] == pytest.approx(bicubic)                 # the stage scores what the scorer scores
    student = load_denoiser(workdir/model)
    assert student.extra['recipe'] == ('colearning' if section == 'distill' else 'sinsr')
    assert (workdir/'models/downsampler/model.safetensors').is_file() == (section == 'distill')
    assert ('lr_domain' in m) == (section == 'distill')                   # G's LR images against the real ones
    if section == 'distill':
        d = m['lr_domain']
        assert (d['images'], d['downsampler']) == (2, 'diffusion')
        stats = ['grad_mean', 'laplacian_var', 'noise_sigma']
        assert all(sorted(d[k]) == stats for k in ('real', 'G_start', 'G_end', 'gap_start', 'gap_end'))
        assert d['real']['noise_sigma']['mean'] > 0 and d['gap_end']['noise_sigma']['abs'] >= 0


def test_distill_stage_refuses_a_mistyped_key(workdir):
    p = yaml.safe_load((workdir/'params.yaml').read_text())
    p['distill']['iteratons'] = 3
    (workdir/'params.yaml').write_text(yaml.safe_dump(p))
    with pytest.raises(ValueError, match=r"params.yaml \[distill\]: unknown key 'iteratons'"):
        distill('params.yaml', 'distill')


def test_distill_stage_refuses_an_unknown_section_and_writes_nothing(workdir):
    with pytest.raises(ParamsError, match=r"no section 'nosuch' \(recipe sections: distill, sinsr, dfosd, tadsr\)"):
        distill('params.yaml', 'nosuch')
    assert sorted(p.name for p in (workdir/'models').iterdir()) == ['teacher']
    assert not (workdir/'results').exists()


def test_distill_stage_names_a_missing_teacher(workdir):
    shutil.rmtree(workdir/'models/teacher')
    with pytest.raises(FileNotFoundError, match='models/teacher'):
        distill('params.yaml', 'distill')


def test_bench_infer_compares_student_and_teacher(workdir):
    r = bench_infer('params.yaml', batch_size=2, lr_size=8, rounds=1)
    assert sorted(r['images_per_sec']) == ['realesrgan', 'student_1', 'teacher_4']  # the external baseline too
    assert min(r['images_per_sec'].values()) > 0, r['images_per_sec']
    assert r['speedup'] == pytest.approx(r['images_per_sec']['student_1'] / r['images_per_sec']['teacher_4'])


def test_bench_train_times_whole_teacher_cycles(workdir):
    p = yaml.safe_load((workdir/'params.yaml').read_text())
    p['distill']['teacher_reuse'] = 3
    (workdir/'params.yaml').write_text(yaml.safe_dump(p))
    r = bench_train('params.yaml', iterations=2, rounds=1)
    names = ['colearning_conv', 'colearning_diffusion', 'dfosd', 'sinsr', 'tadsr']
    assert sorted(r['sec_per_iter']) == names
    assert min(r['sec_per_iter'].values()) > 0, r['sec_per_iter']
    assert r['ratio_to_sinsr']['colearning_conv'] == pytest.approx(r['sec_per_iter']['colearning_conv'] / r['sec_per_iter']['sinsr'])
    assert r['teacher_reuse'] == {'sinsr': 1, 'colearning_diffusion': 3, 'colearning_conv': 3, 'dfosd': 1, 'tadsr': 1}
    assert r['paper_protocol']['teacher_reuse'] == dict.fromkeys(names, 1)
    assert [len(v) for v in r['rounds'].values()] == [1, 1, 1, 1, 1]
