"Exact resume and the stability guard: a teacher killed with SIGKILL and restarted ends bit-identical; NaNs survived."
import os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch, yaml
from safetensors.torch import load_file
from onestepsr.core import write_png
from onestepsr.data import train_loader
from onestepsr.testing import tiny_study, tiny_teacher
from onestepsr.train import distill as D
from onestepsr.train.checkpoint import Checkpointer
from onestepsr.train.teacher import TeacherConfig, teacher, train_teacher

RUN = "from onestepsr.train.teacher import teacher; teacher('params.yaml')"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    "A tiny teacher study: data/hr, test pairs and a params file with a long enough run to be killed in the middle."
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        write_png(torch.rand(3, 40, 40, generator=g), tmp_path/f'data/hr/train/img{i}.png')
        hr = torch.rand(3, 32, 32, generator=g)
        write_png(hr, tmp_path/f'data/pairs/test/hr/p{i}.png')
        write_png(torch.nn.functional.avg_pool2d(hr[None], 4)[0], tmp_path/f'data/pairs/test/lr/p{i}.png')
    P = {'schedule': {'kind': 'resshift', 'T': 4, 'kappa': 1.0},
         'unet': {'channels': 8, 'mult': [1, 2], 'blocks': 1, 'groups': 4, 'patch': 2, 'attn_levels': []},
         'degrade': {'kind': 'bicubic', 'scale': 4, 'crop': 32},
         'teacher': {'crop': 32, 'batch_size': 2, 'iterations': 150, 'warmup': 5, 'val_every': 0, 'log_every': 10,
                     'eval_batch': 2, 'device': 'cpu', 't_sampler': 'loss-aware', 'checkpoint_every': 10}}
    (tmp_path/'params.yaml').write_text(yaml.safe_dump(P))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _env(threads='1'):
    return {**os.environ, 'OMP_NUM_THREADS': threads, 'MKL_NUM_THREADS': threads,
            'PYTHONPATH': str(Path(__file__).resolve().parents[1])}


def _weights(folder):
    return load_file(str(Path(folder, 'model.safetensors')))


def test_teacher_killed_with_sigkill_resumes_bit_identical(workdir):
    ckdir = workdir/'checkpoints/models/teacher'
    proc = subprocess.Popen([sys.executable, '-c', RUN], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while not list(ckdir.glob('ckpt-*')) and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.01)
    proc.kill()                                                           # SIGKILL, in the middle of the run
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (workdir/'models/teacher/model.safetensors').exists()      # it died before the end
    ck = sorted(ckdir.glob('ckpt-*'))
    assert len(ck) == 1 and int(ck[0].name[5:]) < 150, ck
    # a damaged checkpoint is refused with its path, never silently used
    shutil.copytree(ck[0], workdir/'backup')
    st = ck[0]/'state.safetensors'
    st.write_bytes(st.read_bytes()[:-50])
    with pytest.raises(ValueError, match=f'{st.relative_to(workdir)}: corrupt or truncated resume checkpoint'):
        teacher('params.yaml')
    shutil.rmtree(ck[0])
    shutil.copytree(workdir/'backup', ck[0])
    # the same command again: resumes and ends with the weights of an uninterrupted run
    r = subprocess.run([sys.executable, '-c', RUN], env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f'resumed at iteration {int(ck[0].name[5:])}' in r.stderr, r.stderr[-2000:]
    assert not ckdir.exists()                                             # a finished run leaves no checkpoints
    rows = Path('results/teacher/live/plots/metrics/train/loss.tsv').read_text().splitlines()
    assert rows[1].split('\t')[rows[0].split('\t').index('step')] == '10', rows[:3]  # the logs before the kill are kept
    resumed = _weights('models/teacher')
    P = yaml.safe_load(Path('params.yaml').read_text())
    P['teacher']['checkpoint_every'] = 0
    Path('params.yaml').write_text(yaml.safe_dump(P))
    r = subprocess.run([sys.executable, '-c', RUN], env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    plain = _weights('models/teacher')
    assert sorted(resumed) == sorted(plain)
    differ = [k for k in plain if not torch.equal(resumed[k], plain[k])]
    assert not differ, differ


def test_checkpoint_of_other_settings_is_ignored(workdir, capsys):
    P = yaml.safe_load(Path('params.yaml').read_text())
    P['teacher'].update(iterations=4, checkpoint_every=2)
    Path('params.yaml').write_text(yaml.safe_dump(P))
    stale = Checkpointer('checkpoints/models/teacher', 2, {'other': 1})
    stale.save(2, {'x': torch.nn.Linear(1, 1)})
    teacher('params.yaml')
    assert 'written for other settings' in capsys.readouterr().out
    assert not Path('checkpoints/models/teacher').exists()


class _NaNAt:
    "A loader whose batches are NaN at the given calls (a bad batch); its state is the wrapped stream's."
    def __init__(self, loader, calls):
        self.loader, self.calls, self.n = loader, set(calls), 0
    def __next__(self):
        b, self.n = next(self.loader), self.n + 1
        return {k: v * float('nan') for k, v in b.items()} if self.n - 1 in self.calls else b
    def state_dict(self):
        return self.loader.state_dict()
    def load_state_dict(self, s):
        self.loader.load_state_dict(s)


class _Log:
    def __init__(self):
        self.rows = []
    def log(self, step, values):
        self.rows.append((step, values))


def test_teacher_survives_nans_rolls_back_and_lowers_the_lr(tmp_path, capsys):
    tiny_study(tmp_path)
    pool = lambda hr, g: torch.nn.functional.avg_pool2d(hr, 4)
    loader = _NaNAt(train_loader(tmp_path/'data/hr', 32, 2, pool), (5, 6))
    cfg = TeacherConfig(crop=32, batch_size=2, iterations=8, warmup=0, lr_final=1.0, log_every=1, device='cpu',
                        max_skips=2, lr_decay=0.25)
    lg = _Log()
    ema, facts = train_teacher(tiny_teacher(), loader, cfg, 4, logger=lg, progress=False,
                               ckpt=Checkpointer(tmp_path/'ck', 4, {}))
    assert (facts['iterations'], facts['skipped'], facts['rollbacks']) == (8, 2, 1)
    err = capsys.readouterr().err
    assert 'iteration 5: a non-finite loss or gradient; the step was skipped (2 in a row)' in err, err
    assert 'rolled back to iteration 4' in err and 'learning rate x0.25' in err, err
    lrs = [(s, v['train/lr']) for s, v in lg.rows if 'train/lr' in v]
    assert [s for s, _ in lrs] == [1, 2, 3, 4, 5, 5, 6, 7, 8]             # 1-5, then 5-8 again after the rollback
    assert lrs[4][1] == cfg.lr and lrs[5][1] == pytest.approx(0.25 * cfg.lr)  # the constant lr, lowered
    assert [s for s, v in lg.rows if 'train/skipped' in v] == [5, 5]
    assert all(torch.isfinite(q).all() for q in ema.parameters())


def test_distill_crash_and_resume_is_bit_identical_and_survives_a_nan(tmp_path, monkeypatch):
    tiny_study(tmp_path)
    monkeypatch.chdir(tmp_path)
    P = yaml.safe_load(Path('params.yaml').read_text())
    P['distill'].update(iterations=6, teacher_reuse=2)
    Path('params.yaml').write_text(yaml.safe_dump(P))
    D.distill('params.yaml', 'distill')
    plain = {k: _weights(f'models/{k}') for k in ('student', 'downsampler')}
    P['distill']['checkpoint_every'] = 2
    Path('params.yaml').write_text(yaml.safe_dump(P))
    real, calls = D.train_step, []

    def dies_at_5(*a, **k):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError('killed')
        return real(*a, **k)

    monkeypatch.setattr(D, 'train_step', dies_at_5)
    with pytest.raises(RuntimeError, match='killed'):
        D.distill('params.yaml', 'distill')
    assert [p.name for p in Path('checkpoints/models/student').iterdir()] == ['ckpt-00000004']
    monkeypatch.setattr(D, 'train_step', real)
    D.distill('params.yaml', 'distill')
    for k, w in plain.items():
        again = _weights(f'models/{k}')
        assert all(torch.equal(again[n], w[n]) for n in w), k
    # a NaN in one batch: the step is skipped, the run ends finite
    nets = D.build_nets(tiny_teacher(), D.plan(), 4)
    loader = _NaNAt(train_loader('data/hr', 32, 2, lambda hr, g: torch.nn.functional.avg_pool2d(hr, 4)), (1,))
    cfg = D.DistillConfig(iterations=3, lr=1e-3, batch_size=2, crop=32, device='cpu')
    stats = D.train_student(nets, D.plan(), loader, cfg, 4, progress=False)
    assert (stats['iterations'], stats['skipped']) == (3, 1) and 'rollbacks' not in stats
    assert all(torch.isfinite(q).all() for q in nets['student'].parameters())
