"TAD-SR (recipe `tadsr`): its losses and its time-aware discriminator, and one iteration in latent space."
import pytest, torch, yaml
from onestepsr.losses import LOSSES, Batch
from onestepsr.nets.denoiser import load_denoiser
from onestepsr.nets.discriminator import DiscConfig, build_discriminator
from onestepsr.testing import reference_teacher, tiny_study, tiny_teacher
from onestepsr.train import tadsr  # registers the recipe, its losses and the 'time_aware' features
from onestepsr.train.distill import Distiller, build_nets, plan, sections


def _batch(seed=0, off=0.3):
    g = torch.Generator().manual_seed(seed)
    z_tch, y = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    z_stu = (z_tch + off * torch.randn(2, 3, 8, 8, generator=g)).requires_grad_()
    return Batch(x0=z_tch, lr=y[..., ::4, ::4], y=y, x_T=y, x0_teacher=z_tch, x0_student=z_stu), z_stu, z_tch


def test_hsd_is_zero_when_the_student_equals_the_teacher():
    teacher = tiny_teacher()
    b, _, z_tch = _batch()
    b.x0_student = z_tch.clone()
    assert float(LOSSES['hsd']({'teacher': teacher}, b, teacher.schedule)) == 0.0


def test_hsd_gradient_moves_the_student_toward_the_teacher():
    "With a teacher blind to its input the score difference is omega_2 (z_stu - z_tch): descent shrinks the gap."
    teacher = tiny_teacher()
    const = {'teacher': lambda x, y, t: torch.zeros_like(x)}
    b, z_stu, z_tch = _batch()
    LOSSES['hsd'](const, b, teacher.schedule, generator=torch.Generator().manual_seed(3)).backward()
    d = (z_stu - z_tch).detach()
    assert float((z_stu.grad * d).sum()) > 0                        # it points from the teacher to the student
    cos = torch.nn.functional.cosine_similarity(z_stu.grad.flatten(1), d.flatten(1))
    assert (cos > 0.99).all(), cos                                  # per image: along the difference
    moved = z_stu.detach() - 0.5 * z_stu.grad / z_stu.grad.abs().max()
    assert (moved - z_tch).norm() < d.norm()


def test_time_aware_discriminator_output_changes_with_t():
    D = build_discriminator(DiscConfig(features='time_aware', augment='', hidden=16), tiny_teacher()).eval()
    x, y = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        logits = lambda t: D.score(D.features(x, y, torch.Generator().manual_seed(0), t=torch.full((2,), t)))
        l1, again, l3 = logits(1), logits(1), logits(3)
    assert torch.allclose(l1, again)                                # the same input, noise and t: the same logits
    assert not torch.allclose(l1, l3, atol=1e-3)                    # another t: other logits


def test_one_tadsr_iteration_in_latent_space(tmp_path, monkeypatch, root):
    "The student and D_T train in one iteration with the reference's latent teacher; the teacher stays frozen."
    tiny_study(tmp_path, latent=root / 'tests/data/resshift')
    monkeypatch.chdir(tmp_path)
    cfg, deg, disc, down = sections(yaml.safe_load(open('params.yaml')), 'tadsr')
    teacher = load_denoiser('models/teacher')
    assert teacher.latent and teacher.takes_lq
    p = plan('tadsr')
    nets = build_nets(teacher, p, deg.scale, disc, down)
    before = {k: {n: v.clone() for n, v in m.state_dict().items()} for k, m in nets.items()}
    g = torch.Generator().manual_seed(0)
    batch = lambda: {'hr': torch.rand(2, 3, 32, 32, generator=g), 'lr': torch.rand(2, 3, 8, 8, generator=g)}
    loader = iter(batch, None)
    losses = Distiller(nets, p, loader, cfg, deg.scale)()
    assert set(losses) >= {'distill', 'hsd', 'tad_g', 'tad_d', 'dt_acc'}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    for role in ('student', 'D_T'):
        after = nets[role].state_dict()
        assert any(not torch.equal(v, before[role][k]) for k, v in after.items() if not k.startswith('autoencoder.'))
    assert all(torch.equal(v, before['teacher'][k]) for k, v in nets['teacher'].state_dict().items())
