"The distillation stages end to end on tiny data: a tiny teacher, a few random images, two iterations."
import json
import pytest, yaml
from onestepsr.nets.denoiser import load_denoiser
from onestepsr.train.distill import bench_infer, bench_train, distill, tiny_study

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
    assert set(r['images_per_sec']) == {'student_1', 'teacher_4'} and all(v > 0 for v in r['images_per_sec'].values())
    assert r['speedup'] == pytest.approx(r['images_per_sec']['student_1'] / r['images_per_sec']['teacher_4'])  # no timing claim


def test_bench_train_times_whole_teacher_cycles(workdir):
    p = yaml.safe_load((workdir/'params.yaml').read_text()); p['distill']['teacher_reuse'] = 3
    (workdir/'params.yaml').write_text(yaml.safe_dump(p))
    r = bench_train('params.yaml', iterations=2, rounds=1)
    names = {'sinsr', 'colearning_diffusion', 'colearning_conv'}
    assert set(r['sec_per_iter']) == names and r['ratio_to_sinsr']['sinsr'] == 1.0  # no timing claim
    assert r['teacher_reuse'] == {'sinsr': 1, 'colearning_diffusion': 3, 'colearning_conv': 3}
    assert r['paper_protocol']['teacher_reuse'] == dict.fromkeys(names, 1)
