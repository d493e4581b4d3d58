"The repository's own promises: the README is the index notebook, the library is the notebooks, the CLI runs."
import subprocess
from onestepsr.repo import export_drift, readme_text


def test_readme_is_index_notebook(root):
    assert (root/'README.md').read_text() == readme_text(root/'nbs/index.ipynb'), \
        'README.md differs from nbs/index.ipynb: run `make export`'


def test_readme_gives_the_two_commands(root):
    text = (root/'README.md').read_text()
    assert 'make repro' in text and 'make test' in text


def test_notebooks_and_library_agree(root, venv_bin):
    changed = export_drift(root, venv_bin)
    assert not changed, f'nbdev_export/nbdev_clean would change: {changed}: edit the notebooks, then `make export`'


def test_export_drift_sees_an_unexported_change(root, venv_bin, tmp_path):
    import shutil
    for name in ('nbs', 'onestepsr'): shutil.copytree(root/name, tmp_path/name)
    shutil.copy(root/'settings.ini', tmp_path/'settings.ini')
    core = tmp_path/'onestepsr/core.py'
    core.write_text(core.read_text().replace('def seed_everything', 'def seed_everything_renamed'))
    assert 'onestepsr/core.py' in export_drift(tmp_path, venv_bin)


def test_console_command(venv_bin):
    out = subprocess.run([str(venv_bin/'onestepsr'), '--help'], capture_output=True, text=True, check=True).stdout
    assert 'commands:' in out
    ver = subprocess.run([str(venv_bin/'onestepsr'), '--version'], capture_output=True, text=True, check=True).stdout
    assert ver.startswith('onestepsr ')


def test_dvc_config_is_offline(root):
    cfg = (root/'.dvc/config').read_text().replace(' ', '')
    assert 'analytics=false' in cfg and 'check_update=false' in cfg
