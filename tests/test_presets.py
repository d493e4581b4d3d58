"The `paper` preset of params.yaml: it loads, every section passes its schema, every network builds, the split holds."
import dataclasses, warnings, zipfile
import numpy as np, pytest, torch, yaml
from PIL import Image
from onestepsr.core import load_params, typed
from onestepsr.data import DataConfig, prepare_images
from onestepsr.evaluate import EvalConfig
from onestepsr.nets.denoiser import build_denoiser
from onestepsr.published import published_config
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
    assert data.source == 'url' and 'DIV2K_train_HR' in str(data.url) and 'DIV2K_valid_HR' in str(data.test_url)
    assert data.test == 0 and 'valid' not in str(data.url)                 # never mixed
    assert deg.kind == 'realesrgan' and deg.crop == 256 and deg.scale == 4
    assert tuple(deg.realesrgan.noise_range) == (1.0, 30.0)
    assert cfg.lr == 5e-5 and cfg.iterations == 20000 and cfg.crop == 256 and cfg.recipe == 'colearning'
    assert plan(cfg.recipe, cfg.paths, cfg.w, cfg.adv_weight, cfg.weights)['student'] == {
        'denoise_student': 1.0, 'distill': 1.0, 'hr_g': 1.0, 'lr_g': 1.0}  # eq. 7: equal weights
    assert tcfg.imported == 'models/resshift' and tcfg.crop == 256
    assert sections(P, 'sinsr', str(paper))[0].iterations == 30000
    ev = typed(EvalConfig, P['evaluate'])
    assert ev.methods['teacher_15']['sampler'] == 'ancestral' and ev.methods['sinsr_published']['sampler'] == 'x0'
    assert set(ev.realworld) == {'RealSR', 'RealSet65'}


def test_paper_preset_builds_every_network_with_the_published_shapes(paper):
    "The imported teacher's architecture (random weights here), the student copied from it, G and the discriminators."
    P = load_params(paper)
    cfg, deg, disc, down = sections(P, 'distill', str(paper))
    assert disc.hr.features == 'vit' and disc.lr.features == 'vit'
    teacher = build_denoiser(published_config('resshift'))
    assert teacher.latent and teacher.takes_lq
    assert round(sum(q.numel() for q in teacher.net.parameters()) / 1e6, 1) == 118.6
    assert round(sum(q.numel() for q in teacher.autoencoder.parameters()) / 1e6, 1) == 55.3
    cnn = dataclasses.replace(disc, hr=dataclasses.replace(disc.hr, features='cnn'),
                              lr=dataclasses.replace(disc.lr, features='cnn'))   # the ViT weights are not here
    nets = build_nets(teacher, plan(cfg.recipe, cfg.paths), deg.scale, cnn, down)
    assert sorted(nets) == ['D_H', 'D_L', 'G', 'student', 'teacher']
    assert not any(q.requires_grad for q in nets['student'].autoencoder.parameters())
    with torch.no_grad():                                                  # wiring check at the smallest size
        lq = torch.zeros(1, 3, 64, 64)
        z = nets['student'].autoencoder.encode(torch.zeros(1, 3, 256, 256))
        assert z.shape == (1, 3, 64, 64)
        img = nets['student'].autoencoder.decode(nets['student'](z, z, torch.tensor([15]), cond=lq))
        assert img.shape == (1, 3, 256, 256) and nets['G'](img).shape == (1, 3, 64, 64)


def _archive(folder, name, stems, seed):
    "A zip like DIV2K's: NAME/STEM.png for each stem."
    rng, folder = np.random.default_rng(seed), folder / name
    folder.mkdir()
    with zipfile.ZipFile(folder.with_suffix('.zip'), 'w') as z:
        for s in stems:
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f'{s}.png')
            z.write(folder / f'{s}.png', f'{name}/{s}.png')
    return folder.with_suffix('.zip').as_uri()


def test_paper_split_keeps_every_official_validation_image_out_of_training(paper, tmp_path):
    "The preset's data section with its two archives replaced by small local ones of DIV2K's file names."
    P = load_params(paper)
    train = _archive(tmp_path, 'DIV2K_train_HR', [f'{i:04d}' for i in range(1, 13)], 0)
    valid = _archive(tmp_path, 'DIV2K_valid_HR', [f'{i:04d}' for i in range(801, 806)], 1)
    cfg = dataclasses.replace(typed(DataConfig, P['data']), url=train, test_url=valid, min_size=32, val=2,
                              downloads=str(tmp_path / 'dl'))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')                                    # no sha256 pinned for the local archives
        m = prepare_images(cfg, tmp_path / 'hr', progress=False)
    number = lambda n: int(n.split('__')[-1])                              # names keep the archive's folder
    assert [number(n) for n in m['split']['test']] == [801, 802, 803, 804, 805]
    assert not set(m['split']['train'] + m['split']['val']) & set(m['split']['test'])
    assert all(number(n) <= 800 for n in m['split']['train'] + m['split']['val'])


def test_unknown_preset_is_refused(root, tmp_path):
    d = yaml.safe_load((root/'params.yaml').read_text()); d['preset'] = 'gpu-cluster'
    p = tmp_path/'params.yaml'; p.write_text(yaml.safe_dump(d))
    with pytest.raises(ValueError, match="preset 'gpu-cluster' is not defined"): load_params(p)
