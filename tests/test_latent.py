"Latent space: the recipes and the upscalers with the ResShift reference's small UNet and VQ-f4 autoencoder."
import json
import pytest, torch, yaml
from onestepsr.core import ParamsError
from onestepsr.infer import diffusion_upscaler
from onestepsr.losses import Batch
from onestepsr.nets.denoiser import load_denoiser
from onestepsr.nets.discriminator import DiscParams
from onestepsr.testing import reference_teacher, tiny_study
from onestepsr.train.distill import Distiller, build_nets, distill, plan, sections
from onestepsr.upscale import Upsampler


@pytest.fixture
def ref(root):
    return root / 'tests/data/resshift'


@pytest.fixture
def workdir(tmp_path, monkeypatch, ref):
    "The miniature study with the reference's latent model as its teacher."
    tiny_study(tmp_path, latent=ref)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_one_colearning_iteration_in_latent_space(workdir):
    "Every network of the co-learning plan trains in one iteration; the teacher and the autoencoder stay frozen."
    P = yaml.safe_load((workdir / 'params.yaml').read_text())
    cfg, deg, disc, down = sections(P, 'distill')
    teacher = load_denoiser('models/teacher')
    p = plan('colearning')
    nets = build_nets(teacher, p, deg.scale, disc, down)
    before = {k: _state(v) for k, v in nets.items()}
    g = torch.Generator().manual_seed(0)
    batch = lambda: {'hr': torch.rand(2, 3, 32, 32, generator=g), 'lr': torch.rand(2, 3, 8, 8, generator=g)}
    loader = iter(batch, None)
    step = Distiller(nets, p, loader, cfg, deg.scale)
    losses = step()
    assert set(losses) >= {'distill', 'hr_g', 'lr_g', 'denoise_student', 'denoise_G', 'hr_d', 'lr_d'}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    b = next(step.batches)
    assert isinstance(b, Batch) and b.x0.shape == (2, 3, 8, 8) and b.hr.shape == (2, 3, 32, 32)  # latents, pixels
    for role in ('student', 'G', 'D_H', 'D_L'):
        after = nets[role].state_dict()
        trained = [k for k in after if not k.startswith('autoencoder.') and not torch.equal(after[k], before[role][k])]
        assert trained, f'{role} did not change'
    for k, v in nets['student'].autoencoder.state_dict().items():
        assert torch.equal(v, before['student']['autoencoder.' + k]), k
    for k, v in nets['teacher'].state_dict().items():
        assert torch.equal(v, before['teacher'][k]), k


@pytest.mark.parametrize('section', ['distill', 'sinsr'])
def test_recipe_stage_runs_in_latent_space(workdir, section):
    "The DVC stage of each recipe with a latent teacher: trains, saves a latent student, scores it."
    distill('params.yaml', section)
    m = json.loads((workdir / f'results/{section}/metrics.json').read_text())
    assert sorted(m['test']) == ['bicubic', 'student_1', 'teacher_15']
    student = load_denoiser(workdir / ('models/student' if section == 'distill' else 'models/sinsr'))
    assert student.latent and student.takes_lq


def test_latent_upscalers(ref):
    "The evaluation upscaler and the image upsampler decode latent samples to images of the right size."
    model = reference_teacher(ref)
    lr = torch.rand(2, 3, 12, 20)                                          # not a multiple of the network's size
    sr = diffusion_upscaler(model, 'x0', 4)(lr)
    assert sr.shape == (2, 3, 48, 80) and torch.isfinite(sr).all()
    up = Upsampler(model, 4, steps=1, tile=8, overlap=2)
    out = up(torch.rand(3, 12, 20))
    assert out.shape == (3, 48, 80)


def test_teacher_encoder_features_are_refused_in_latent_space(ref):
    teacher = reference_teacher(ref)
    with pytest.raises(ParamsError, match='features teacher_encoder runs the teacher on pixels'):
        build_nets(teacher, plan('colearning'), 4, DiscParams())
