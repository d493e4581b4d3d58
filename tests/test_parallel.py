"Scale-out: a trainer on two CPU processes (gloo, through Accelerate's process state) against one process."
import os, subprocess, sys
from pathlib import Path
import pytest, torch, yaml
from safetensors.torch import load_file, save_file
from onestepsr.core import load_params, write_png
from onestepsr.data import train_loader
from onestepsr.degrade import make_degradation
from onestepsr.nets.denoiser import load_denoiser
from onestepsr.testing import tiny_study
from onestepsr.train.distill import build_nets, plan, sections, train_student
from onestepsr.train.parallel import engine_of

TOL = 1e-5  # max abs difference of a weight after three steps (float sums in another order, nothing else)
GTOL = 1e-5  # max abs difference of a first-update gradient, relative to the network's largest gradient
EPS = 1e-3  # Adam's eps in these runs (see WORKER)

# Each process trains the co-learning recipe (student, G, D_H, D_L) and saves its weights as rank<r>.safetensors and
# the gradients of the first update, averaged over the processes, as grad<r>.safetensors. With Adam's usual eps
# (1e-8) a weight whose gradient is zero up to rounding (a bias that the next normalisation cancels: the
# discriminator heads' batch norm, the UNets' group norm) takes a full step of lr whatever the sign of its rounding
# noise (m / sqrt(v) = +-1), so two correct runs part by 2 lr there; with eps = EPS such a weight moves by
# lr x noise / EPS, and every weight can be held to TOL.
WORKER = r'''
import torch
from safetensors.torch import save_file
import onestepsr.train.distill as D
from onestepsr.core import load_params, seed_everything
from onestepsr.data import train_loader
from onestepsr.degrade import make_degradation
from onestepsr.nets.denoiser import load_denoiser
from onestepsr.train.parallel import Engine, engine_of
make = D._optimizer
def optimizer(net, role, cfg):
    o = make(net, role, cfg)
    o.param_groups[0]['eps'] = @EPS
    return o
D._optimizer = optimizer
cfg, deg, disc, down = D.sections(load_params('params.yaml'), 'distill')
seed_everything(cfg.seed)
engine = engine_of(cfg)
p = D.plan(cfg.recipe, cfg.paths, cfg.w, cfg.adv_weight, cfg.weights)
nets = D.build_nets(load_denoiser(cfg.teacher, engine.device), p, deg.scale, disc, down)
names, grads, sync = {id(q): f'{n}.{k}' for n in p for k, q in nets[n].named_parameters()}, {}, Engine.sync
def record(self, params):  # the first update's averaged gradients
    sync(self, params)
    grads.update({names[id(q)]: q.grad.detach().clone() for q in params if q.grad is not None} if not grads else {})
Engine.sync = record
loader = train_loader(cfg.hr, cfg.crop, cfg.batch_size, make_degradation(deg), cfg.seed, device=engine.device)
stats = D.train_student(nets, p, loader, cfg, deg.scale, progress=False, engine=engine)
w = {f'{n}.{k}': v.detach().contiguous() for n in p for k, v in nets[n].state_dict().items()}
save_file(w, f'rank{engine.rank}.safetensors', metadata={'world': str(engine.world), 'its': str(stats['iterations'])})
save_file(grads, f'grad{engine.rank}.safetensors')
'''


def _env():
    return {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(__file__).resolve().parents[1])}


def _study(d: Path, **over) -> Path:
    "The miniature study with a 4-crop global batch and three co-learning iterations."
    f = tiny_study(d)
    P = yaml.safe_load(f.read_text())
    P['distill'] |= {'iterations': 3, 'batch_size': 4, 'teacher_reuse': 1, **over}
    for k in ('hr', 'lr'):  # batch-norm groups of 2 rows: whole in each process's (and micro-batch's) 2 rows
        P['disc'][k]['vbatch'] = 2
    f.write_text(yaml.safe_dump(P, sort_keys=False))
    return f


def _launch(d: Path, n: int, *args: str):
    "Run `args` under torchrun with n processes (n = 1: plain python) in `d`; fail with the output."
    pre = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(n)] if n > 1 \
        else [sys.executable]
    r = subprocess.run([*pre, *args], cwd=d, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _maxdiff(a: dict, b: dict) -> float:
    assert sorted(a) == sorted(b), (sorted(a)[:5], sorted(b)[:5])
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def _compare(one: Path, split: Path) -> dict:
    "A split run against the single process: first-update gradients within GTOL, weights after three steps within TOL."
    ga, gb, wa, wb = [load_file(d / f'{k}0.safetensors') for k in ('grad', 'rank') for d in (one, split)]
    assert sorted(ga) == sorted(gb) and len(ga) > 0
    top = {}
    for k in ga:
        top[k.split('.')[0]] = max(top.get(k.split('.')[0], 0.0), float(ga[k].abs().max()))
    rel = {k: float((ga[k] - gb[k]).abs().max()) / top[k.split('.')[0]] for k in ga}
    assert max(rel.values()) < GTOL, sorted(rel.items(), key=lambda kv: -kv[1])[:5]
    diff = _maxdiff(wa, wb)
    assert diff < TOL, diff
    return {'gradient': max(rel.values()), 'weight': diff}


def test_two_processes_equal_one(tmp_path):
    for k in ('one', 'two'):
        _study(tmp_path / k)
        (tmp_path / k / 'worker.py').write_text(WORKER.replace('@EPS', repr(EPS)))
    _launch(tmp_path / 'one', 1, 'worker.py')
    _launch(tmp_path / 'two', 2, 'worker.py')
    r0, r1 = (load_file(tmp_path / 'two' / f'rank{r}.safetensors') for r in (0, 1))
    assert _maxdiff(r0, r1) == 0.0  # every process holds the same weights, bit for bit
    single = load_file(tmp_path / 'one' / 'rank0.safetensors')
    start = load_denoiser(tmp_path / 'one' / 'models/teacher').net.state_dict()
    moved = max(float((single[f'student.net.{k}'] - v).abs().max()) for k, v in start.items())
    assert moved > 100 * TOL, moved  # the three steps moved the student
    print('two processes against one:', _compare(tmp_path / 'one', tmp_path / 'two'))


def _pairs_study(d: Path, sections: dict) -> Path:
    "Two random training images, two test pairs and these sections (the teacher's and YONOS-SR's tests' own study)."
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        write_png(torch.rand(3, 48, 48, generator=g), d / f'data/hr/train/img{i}.png')
        hr = torch.rand(3, 32, 32, generator=g)
        write_png(hr, d / f'data/pairs/test/hr/p{i}.png')
        write_png(torch.nn.functional.avg_pool2d(hr[None], 4)[0], d / f'data/pairs/test/lr/p{i}.png')
    P = {'unet': {'channels': 8, 'mult': [1, 2], 'blocks': 1, 'groups': 4, 'patch': 2, 'attn_levels': []},
         'degrade': {'kind': 'bicubic', 'scale': 4, 'crop': 32}, **sections}
    (d / 'params.yaml').write_text(yaml.safe_dump(P))
    return d / 'params.yaml'


RUN = {'iterations': 3, 'batch_size': 4, 'crop': 32, 'device': 'cpu', 'log_every': 1}
YONOS = lambda s, teacher, n: {'scale': s, 'teacher': teacher, 'out': f'models/{n}', 'results': f'results/{n}',
                               'eval_pairs': '', 'warmup': 1, **RUN}
STAGES = {  # stage -> (the study, the command, the model it writes, the line only the main process prints)
    'distill': (_study, ['distill'], 'models/student', 'distill: 3 iterations'),
    'ablate': (_study, ['ablate', '--row', 'all_conv', '--seed', '0'], 'models/ablations/all_conv/seed0/student',
               'distill: 3 iterations'),
    'teacher': (lambda d: _pairs_study(d, {
        'schedule': {'kind': 'resshift', 'T': 4, 'kappa': 1.0},
        'teacher': {**RUN, 'warmup': 1, 'val_every': 0, 'eval_batch': 2, 't_sampler': 'loss-aware'}}),
        ['teacher'], 'models/teacher', 'teacher (PSNR-Y / SSIM-Y)'),
    'yonos': (lambda d: _pairs_study(d, {  # x4 distilled from an x2 model trained here first, in one process
        'yonos_schedule': {'kind': 'cosine', 'T': 10},
        'yonos_x2': YONOS(2, '', 'yonos_x2'), 'yonos_x4': YONOS(4, 'models/yonos_x2', 'yonos_x4')}),
        ['yonos', '--section', 'yonos_x4'], 'models/yonos_x4', 'yonos_x4: x4, 3 it'),
}


@pytest.mark.parametrize('stage', sorted(STAGES))
def test_launch_runs_a_stage_once(tmp_path, stage):
    "`torchrun -m onestepsr STAGE` on two processes: one model and one report, those of one process within TOL."
    make, cmd, model, line = STAGES[stage]
    for k in ('one', 'two'):
        make(tmp_path / k)
        if stage == 'yonos':
            _launch(tmp_path / k, 1, '-m', 'onestepsr', 'yonos', '--section', 'yonos_x2')
    _launch(tmp_path / 'one', 1, '-m', 'onestepsr', *cmd, '--params', 'params.yaml')
    r = _launch(tmp_path / 'two', 2, '-m', 'onestepsr', *cmd, '--params', 'params.yaml')
    assert r.stdout.count(line) == 1, r.stdout  # only the main process reports
    a, b = (load_file(tmp_path / k / model / 'model.safetensors') for k in ('one', 'two'))
    assert _maxdiff(a, b) < TOL


def test_gradient_accumulation_equals_the_whole_batch(tmp_path):
    "One process, grad_accum 2 (two micro-batches of 2 crops) against grad_accum 1."
    for k, accum in (('one', 1), ('accum', 2)):
        _study(tmp_path / k, grad_accum=accum)
        (tmp_path / k / 'worker.py').write_text(WORKER.replace('@EPS', repr(EPS)))
        _launch(tmp_path / k, 1, 'worker.py')
    print('grad_accum 2 against 1:', _compare(tmp_path / 'one', tmp_path / 'accum'))


def test_batch_that_does_not_split_is_refused(tmp_path):
    f = _study(tmp_path, batch_size=3, grad_accum=2)
    cfg = sections(load_params(f), 'distill', str(f))[0]
    with pytest.raises(ValueError, match=r'batch_size 3 does not split into 1 processes x grad_accum 2'):
        engine_of(cfg, where=f'{f} [distill]')


def test_mixed_precision_changes_the_arithmetic_and_trains(tmp_path):
    "bf16 and fp16 (autocast; fp16 with a loss scale whose overflows skip the step) against fp32, three iterations."
    w = {}
    for mp in ('no', 'bf16', 'fp16'):
        _study(tmp_path / mp, mixed_precision=mp)
        (tmp_path / mp / 'worker.py').write_text(WORKER.replace('@EPS', repr(EPS)))
        _launch(tmp_path / mp, 1, 'worker.py')
        w[mp] = load_file(tmp_path / mp / 'rank0.safetensors')
    bound = 2 * 3 * 1e-3  # Adam moves a weight by at most lr per step: 3 steps at lr 1e-3 (its eps aside)
    for mp in ('bf16', 'fp16'):
        assert all(bool(v.isfinite().all()) for v in w[mp].values()), mp
        diff = _maxdiff(w['no'], w[mp])
        assert 0 < diff <= bound, (mp, diff)  # other arithmetic, the same three updates
