"The `paper` preset of params.yaml: it loads, every section passes its schema, and every network builds."
import pytest, torch, yaml
from onestepsr.core import load_params, typed
from onestepsr.data import DataConfig
from onestepsr.nets.denoiser import Denoiser
from onestepsr.nets.unet import UNet
from onestepsr.schedules import make_schedule
from onestepsr.train.distill import build_nets, plan, sections
from onestepsr.train.teacher import TeacherConfig


@pytest.fixture
def paper(root, tmp_path):
    "params.yaml with `preset: paper`, as `dvc exp run -S preset=paper` leaves it."
    d = yaml.safe_load((root/'params.yaml').read_text()); d['preset'] = 'paper'
    p = tmp_path/'params.yaml'; p.write_text(yaml.safe_dump(d))
    return p


def test_paper_preset_sets_the_papers_settings(paper):
    P = load_params(paper)
    data, tcfg = typed(DataConfig, P['data']), typed(TeacherConfig, P['teacher'])
    cfg, deg, disc, down = sections(P, 'distill', str(paper))
    assert data.source == 'url' and 'DIV2K' in str(data.url)
    assert deg.kind == 'realesrgan' and deg.crop == 256 and deg.scale == 4 and tuple(deg.realesrgan.noise_range) == (1.0, 30.0)
    assert cfg.lr == 5e-5 and cfg.iterations == 20000 and cfg.crop == 256 and cfg.recipe == 'colearning'
    assert make_schedule(**P['schedule']).T == 15 and tcfg.crop == 256
    assert sections(P, 'sinsr', str(paper))[0].iterations == 30000


def test_paper_preset_builds_every_network(paper):
    P = load_params(paper)
    cfg, deg, disc, down = sections(P, 'distill', str(paper))
    teacher = Denoiser(UNet(**typed(UNet, P['unet'])), make_schedule(**P['schedule']))
    assert sum(q.numel() for q in teacher.parameters()) > 50e6             # ResShift-sized (118.6 M in the paper)
    nets = build_nets(teacher, plan(cfg.recipe, cfg.paths), deg.scale, disc, down)
    assert sorted(nets) == ['D_H', 'D_L', 'G', 'student', 'teacher']
    with torch.no_grad():                                                  # wiring check at a small size
        x = torch.zeros(1, 3, 64, 64)
        out = nets['student'](x, x, torch.tensor([15]))
        assert out.shape == x.shape and nets['G'](out).shape == (1, 3, 16, 16)
        assert nets['D_H'](out, x).ndim == 2 and nets['D_L'](nets['G'](out)).ndim == 2


def test_unknown_preset_is_refused(root, tmp_path):
    d = yaml.safe_load((root/'params.yaml').read_text()); d['preset'] = 'gpu-cluster'
    p = tmp_path/'params.yaml'; p.write_text(yaml.safe_dump(d))
    with pytest.raises(ValueError, match="preset 'gpu-cluster' is not defined"): load_params(p)
