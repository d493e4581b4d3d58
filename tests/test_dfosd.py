"DFOSD (recipe `dfosd`): the Sobel operator of eq. 6, the NAD's initialisation, one latent iteration, the stage."
import json
import pytest, torch, yaml
from onestepsr.core import ParamsError
from onestepsr.nets.denoiser import load_denoiser
from onestepsr.testing import reference_teacher, tiny_study
from onestepsr.train.dfosd import SOBEL_X, SOBEL_Y, NADFeatures, sobel
from onestepsr.train.distill import Distiller, build_nets, distill, plan, sections


@pytest.fixture
def ref(root):
    return root / 'tests/data/resshift'


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_sobel_matches_eq6_on_a_constructed_edge():
    "Eq. 6's kernels on step edges: G_x answers beside a vertical edge, G_y beside a horizontal one, both at a corner."
    assert SOBEL_X.tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert SOBEL_Y.tolist() == [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]
    x = torch.zeros(1, 3, 8, 8)
    x[:, :, :, 4:] = 0.5                                                    # a vertical edge of height 0.5
    s = sobel(x)
    assert torch.allclose(s[..., 3:5], torch.full((1, 3, 8, 2), 2.0), atol=1e-5)   # 0.5 * (1 + 2 + 1)
    assert torch.allclose(s[..., [0, 1, 2, 5, 6, 7]], torch.zeros(1, 3, 8, 6), atol=1e-5)
    assert torch.allclose(sobel(x.transpose(2, 3)), s.transpose(2, 3), atol=1e-5)
    corner = torch.zeros(1, 1, 5, 5)
    corner[..., 2:, 2:] = 1.0                                               # both kernels respond: sqrt(gx^2 + gy^2)
    # at (1, 1) only the block's corner pixel is in the window, weighted 1 by both G_x and G_y: S = sqrt(1 + 1)
    assert torch.allclose(sobel(corner)[0, 0, 1, 1], torch.tensor(2.0).sqrt(), atol=1e-5)
    # at (1, 2) the window holds block pixels (2, 2), (2, 3): G_x weights them 0, 1; G_y 2, 1: S = sqrt(1 + 9)
    assert torch.allclose(sobel(corner)[0, 0, 1, 2], torch.tensor(10.0).sqrt(), atol=1e-5)


def test_nad_initialisation_copies_the_teacher_encoder(ref):
    "The NAD of the latent teacher (SwinUNet): its down and middle blocks are copies, trainable, the decoder is gone."
    teacher = reference_teacher(ref).requires_grad_(False)
    nad = NADFeatures(teacher)
    tn, sd = teacher.net.state_dict(), nad.nad.net.state_dict()
    assert sd and set(sd) < set(tn)
    assert not any(k.startswith(('output_blocks.', 'out.')) for k in sd)
    assert any(k.startswith('middle_block.') for k in sd) and any(k.startswith('input_blocks.') for k in sd)
    for k, v in sd.items():
        assert torch.equal(v, tn[k]) and v.data_ptr() != tn[k].data_ptr(), k
    assert all(q.requires_grad for q in nad.parameters())
    assert not any(q.requires_grad for q in teacher.parameters())


def test_one_dfosd_iteration_in_latent_space(tmp_path, monkeypatch, ref):
    "The student and the NAD train on latents; no teacher trajectory; the teacher and the autoencoder stay frozen."
    tiny_study(tmp_path, latent=ref)
    monkeypatch.chdir(tmp_path)
    cfg, deg, disc, down = sections(yaml.safe_load(open('params.yaml')), 'dfosd')
    p = plan('dfosd')
    nets = build_nets(load_denoiser('models/teacher'), p, deg.scale, disc, down)
    assert sorted(nets) == ['D_N', 'student', 'teacher']
    before = {k: _state(v) for k, v in nets.items()}
    g = torch.Generator().manual_seed(0)
    batch = lambda: {'hr': torch.rand(2, 3, 32, 32, generator=g), 'lr': torch.rand(2, 3, 8, 8, generator=g)}
    loader = iter(batch, None)
    step = Distiller(nets, p, loader, cfg, deg.scale)
    losses = step()
    assert set(losses) >= {'pixel_mse', 'ea_perceptual', 'nad_g', 'nad_d'}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    b = next(step.batches)
    assert b.x0_teacher is None and b.x0.shape == (2, 3, 8, 8) and b.hr.shape == (2, 3, 32, 32)
    for role in ('student', 'D_N'):
        after = nets[role].state_dict()
        assert [k for k in after if not k.startswith('autoencoder.') and not torch.equal(after[k], before[role][k])]
    for k, v in nets['student'].autoencoder.state_dict().items():
        assert torch.equal(v, before['student']['autoencoder.' + k]), k
    for k, v in nets['teacher'].state_dict().items():
        assert torch.equal(v, before['teacher'][k]), k


def test_dfosd_stage_and_the_missing_dists_weights(tmp_path, monkeypatch):
    "The stage trains and scores in pixel space; with base dists and no weights it stops naming the way out."
    tiny_study(tmp_path)
    monkeypatch.chdir(tmp_path)
    distill('params.yaml', 'dfosd')
    m = json.loads((tmp_path / 'results/dfosd/metrics.json').read_text())
    assert sorted(m['test']) == ['bicubic', 'student_1', 'teacher_4'] and m['train']['iterations'] == 2
    assert sorted(m['plan']) == ['D_N', 'student'] and (tmp_path / 'models/dfosd/model.safetensors').is_file()
    P = yaml.safe_load(open('params.yaml'))
    P['dfosd']['options'] = {'ea_perceptual': {'base': 'dists', 'weights': str(tmp_path / 'no_such_weights')}}
    P['dfosd']['out'] = 'models/dfosd2'
    (tmp_path / 'dists.yaml').write_text(yaml.safe_dump(P))
    with pytest.raises(ParamsError, match="base 'dists'.*choose an offline base"):
        distill('dists.yaml', 'dfosd')


def test_paper_preset_dfosd_builds_the_nad_from_the_published_teacher(root, tmp_path):
    "The GPU setting: EA-DISTS, the NAD a copy of the published ResShift's encoder, one logit map on a 64^2 latent."
    from onestepsr.core import load_params
    from onestepsr.nets.denoiser import build_denoiser
    from onestepsr.published import published_config
    d = yaml.safe_load((root / 'params.yaml').read_text())
    d['preset'] = 'paper'
    (tmp_path / 'params.yaml').write_text(yaml.safe_dump(d))
    cfg, deg, disc, down = sections(load_params(tmp_path / 'params.yaml'), 'dfosd')
    assert cfg.options == {'ea_perceptual': {'base': 'dists'}} and cfg.crop == 256 and disc.nad.features == 'nad'
    teacher = build_denoiser(published_config('resshift'))
    nets = build_nets(teacher, plan(cfg.recipe, cfg.paths, cfg.w, cfg.adv_weight, cfg.weights), deg.scale, disc, down)
    assert sorted(nets) == ['D_N', 'student', 'teacher']
    n = sum(q.numel() for q in nets['D_N'].features.parameters())
    assert 0 < n < sum(q.numel() for q in teacher.net.parameters())      # the decoder is not copied
    with torch.no_grad():
        z, lq = torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 64, 64)
        assert nets['D_N'](z, (z, lq)).shape[0] == 2
