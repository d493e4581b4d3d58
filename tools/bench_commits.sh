#!/usr/bin/env bash
# Time two commits' code on this machine, alternately, with one venv and one set of trained models:
# `onestepsr bench infer` (3 rounds, no baselines) and `onestepsr bench train` (1 round, shared trajectories).
# usage: tools/bench_commits.sh OLD NEW [ROUNDS]   (run in a checkout after `make repro`; prints one JSON line a run)
# Each commit runs with its own params.yaml; models/ and data/ are this checkout's.
set -euo pipefail
old=$1 new=$2 rounds=${3:-2}
here=$(pwd) tmp=$(mktemp -d)
trap 'git -C "$here" worktree remove --force "$tmp/old" 2>/dev/null; git -C "$here" worktree remove --force "$tmp/new" 2>/dev/null; rm -rf "$tmp"' EXIT
git worktree add --detach -q "$tmp/old" "$old"
git worktree add --detach -q "$tmp/new" "$new"
for _ in $(seq "$rounds"); do
  for c in old new; do
    (cd "$tmp" && PYTHONPATH="$tmp/$c" "$here/.venv/bin/python" - "$tmp/$c" "$here" "$c" <<'PY'
import json, os, sys
sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]  # this commit's code, not the venv's
import onestepsr
code, work, name = sys.argv[1:]
assert onestepsr.__file__.startswith(code), onestepsr.__file__
os.chdir(work)
from onestepsr.bench import bench_infer, bench_train
p = os.path.join(code, 'params.yaml')
i, t = bench_infer(p, rounds=3, baselines=False), bench_train(p, rounds=1, paper_protocol=False)
print(json.dumps({'code': name, 'infer_images_per_sec': i['images_per_sec'], 'train_sec_per_iter': t['sec_per_iter']}))
PY
    )
  done
done
