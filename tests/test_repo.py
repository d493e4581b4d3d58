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


def _imports(root, module:str)->set:
    "The onestepsr modules a module imports anywhere in its source (module level or inside functions)."
    import ast
    f = root/(module.replace('.', '/') + '.py'); pkg, out = module.split('.')[:-1], set()
    for n in ast.walk(ast.parse(f.read_text())):
        if isinstance(n, ast.ImportFrom):
            base = '.'.join((pkg[:len(pkg) - n.level + 1] if n.level else []) + (n.module.split('.') if n.module else []))
            names = [base] + [f'{base}.{a.name}' for a in n.names]
        elif isinstance(n, ast.Import): names = [a.name for a in n.names]
        else: continue
        out |= {m for m in names if m.startswith('onestepsr') and (root/(m.replace('.', '/') + '.py')).is_file()}
    return out

def _code_of(root, module:str)->set:
    "The source files a module runs: itself and everything it imports, transitively."
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in seen: seen.add(m); todo += _imports(root, m)
    return {m.replace('.', '/') + '.py' for m in seen}


def test_dvc_stages_depend_on_the_code_they_run(root):
    "A change to any library file a stage runs makes `dvc repro` rerun that stage."
    import re, yaml
    from onestepsr.cli import COMMANDS
    stages = {f'{f}:{k}': v for f in ('dvc.yaml', 'ablations/dvc.yaml')  # the main chain and the second pipeline
              for k, v in yaml.safe_load((root/f).read_text())['stages'].items()}
    for name, st in stages.items():
        st = st.get('do', st); cmd = st['cmd'].split('&&')[-1].split()
        if cmd[0] == 'onestepsr': mods = [COMMANDS[cmd[1]][0].split(':')[0]]
        else: mods = re.findall(r'from (onestepsr[\w.]*) import', (root/next(c for c in cmd if c.endswith('.ipynb'))).read_text())
        missing = set().union(*(_code_of(root, m) for m in mods)) - set(st['deps'])
        assert not missing, f'stage {name!r} runs {sorted(missing)} without listing them in its deps'
