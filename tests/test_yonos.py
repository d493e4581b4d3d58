"YONOS-SR (issue #14): v-parameterisation, one-step DDIM, the student's start, the chain's stages end to end."
import json
import pytest, torch, yaml
from onestepsr.core import write_png
from onestepsr.nets.denoiser import Denoiser, load_denoiser
from onestepsr.nets.unet import UNet
from onestepsr.samplers import sample
from onestepsr.schedules import make_schedule
from onestepsr.testing import reference_teacher
from onestepsr.train.yonos import (decoder_loss, eps_from_v, finetune_decoder, init_student, v_target, x0_from_v,
                                   yonos)
from onestepsr.yonoseval import yonos_eval, yonos_pairs

SMALL = dict(channels=8, mult=[1, 2], blocks=1, groups=4, patch=2)


def test_v_round_trip_recovers_x0_and_eps():
    vp, g = make_schedule('cosine', T=50), torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, 8, 8, generator=g), torch.randn(5, 3, 8, 8, generator=g)
    t = torch.tensor([1, 2, 25, 49, 50])
    xt = vp.q_sample(x0, None, t, eps)
    v = v_target(x0, eps, t, vp)
    torch.testing.assert_close(x0_from_v(xt, v, t, vp), x0, atol=1e-5, rtol=0)
    torch.testing.assert_close(eps_from_v(xt, v, t, vp), eps, atol=1e-5, rtol=0)


def test_ddim_eta0_is_deterministic_and_one_step_is_the_x0_prediction():
    g = torch.Generator().manual_seed(1)
    y, z = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    for T in (1, 10):
        sch = make_schedule('cosine', T=T)
        torch.manual_seed(T)
        m = Denoiser(UNet(**SMALL), sch, 'v').eval()
        with torch.no_grad():
            a = sample('ddim', m, y, sch, noise=z, generator=torch.Generator().manual_seed(2))
            b = sample('ddim', m, y, sch, noise=z, generator=torch.Generator().manual_seed(3))
            assert torch.equal(a, b)
            if T == 1:
                torch.testing.assert_close(a, m(z, y, 1))
    sch = make_schedule('cosine', T=10)
    with torch.no_grad():  # one step from T: x0_hat = model(x_T, y, T), the `x0` sampler
        torch.testing.assert_close(sample('x0', m, y, sch, noise=z), m(z, y, 10))


def test_student_starts_as_an_exact_copy_of_the_teacher():
    teacher = Denoiser(UNet(**SMALL), make_schedule('cosine', T=10), 'v')
    student = init_student(teacher)
    ts, ss = teacher.state_dict(), student.state_dict()
    assert list(ts) == list(ss) and all(torch.equal(ts[k], ss[k]) for k in ts)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(student.eval()(x, x, 5), teacher(x, x, 5))
    assert not any(p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in student.net.parameters())


def test_decoder_finetuning_trains_only_the_decoder(root):
    ae = reference_teacher(root / 'tests/data/resshift').autoencoder
    m = Denoiser(UNet(**{**SMALL, 'patch': 1}), make_schedule('cosine', T=10), 'v', autoencoder=ae)
    g = torch.Generator().manual_seed(0)
    batch = {'hr': torch.rand(2, 3, 32, 32, generator=g), 'lr': torch.rand(2, 3, 8, 8, generator=g)}
    before = {k: v.clone() for k, v in m.state_dict().items()}
    l0 = decoder_loss(m, batch, 4, torch.Generator().manual_seed(0)).item()
    finetune_decoder(m, iter(lambda: batch, None), 4, iterations=4, lr=1e-3)
    changed = {k for k, v in m.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith('autoencoder.decoder.') for k in changed), changed
    assert decoder_loss(m, batch, 4, torch.Generator().manual_seed(0)).item() < l0


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        write_png(torch.rand(3, 48, 48, generator=g), tmp_path / f'data/hr/train/img{i}.png')
        hr = torch.rand(3, 32, 32, generator=g)
        write_png(hr, tmp_path / f'data/pairs/test/hr/p{i}.png')
        write_png(torch.nn.functional.avg_pool2d(hr[None], 4)[0], tmp_path / f'data/pairs/test/lr/p{i}.png')
    link = lambda s, teacher, n, pairs='': dict(scale=s, teacher=teacher, out=f'models/{n}', results=f'results/yonos/{n}',
                                                eval_pairs=pairs, iterations=3, batch_size=2, crop=32, warmup=1,
                                                device='cpu', log_every=1)
    P = {'unet': SMALL, 'degrade': {'kind': 'bicubic', 'scale': 4, 'crop': 32},
         'yonos_schedule': {'kind': 'cosine', 'T': 10},
         'yonos_x2': link(2, '', 'yonos_x2'), 'yonos_x4': link(4, 'models/yonos_x2', 'yonos_x4', 'data/pairs'),
         'yonos_x8': link(8, 'models/yonos_x4', 'yonos_x8', 'data/pairs_x8'),
         'yonos_x8_direct': link(8, '', 'yonos_x8_direct', 'data/pairs_x8'), 'yonos_eval': {'device': 'cpu'}}
    (tmp_path / 'params.yaml').write_text(yaml.safe_dump(P))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_chain_and_the_x8_comparison_run_end_to_end(workdir):
    yonos(section='yonos_x2')
    x2 = load_denoiser('models/yonos_x2')
    assert x2.precond == 'v' and x2.schedule.T == 10 and x2.extra['scale'] == 2
    yonos(section='yonos_x4')
    m4 = json.loads((workdir / 'results/yonos/yonos_x4/metrics.json').read_text())
    assert m4['teacher'] == 'models/yonos_x2' and 'psnr' in m4['test']['x0']
    yonos_pairs()
    assert len(list((workdir / 'data/pairs_x8/test/lr').glob('*.png'))) == 2
    yonos(section='yonos_x8')
    yonos(section='yonos_x8_direct')
    yonos_eval()
    table = (workdir / 'results/yonos/table.md').read_text()
    assert 'distilled_x8' in table and 'direct_x8' in table and 'ΔPSNR' in table
    m = json.loads((workdir / 'results/yonos/metrics.json').read_text())
    assert m['distilled_x8']['diff']['psnr']['ci95'] is not None
