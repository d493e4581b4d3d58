"""Paired differences between two methods of the results table, from results/evaluate/per_image.csv.

usage: python tools/paired.py METHOD OTHER [OTHER ...] [--csv results/evaluate/per_image.csv] [--set test]
Prints METHOD - OTHER for every metric: the mean over the images, its 95% BCa bootstrap interval with the images
resampled in pairs (onestepsr.report.bootstrap_ci, seed 0, the table's own), and * where the interval excludes 0.
"""
import argparse, collections, csv
from onestepsr.report import bootstrap_ci

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument('method')
ap.add_argument('others', nargs='+')
ap.add_argument('--csv', default='results/evaluate/per_image.csv')
ap.add_argument('--set', default='test')
a = ap.parse_args()
scores = collections.defaultdict(dict)  # method -> image -> row
for r in csv.DictReader(open(a.csv)):
    if r['set'] == a.set:
        scores[r['method']][r['image']] = r
for m in [a.method, *a.others]:
    if m not in scores:
        raise SystemExit(f"{a.csv}: no method {m!r} in set {a.set!r} (methods: {', '.join(sorted(scores))})")
metrics = [k for k in next(iter(scores[a.method].values())) if k not in ('set', 'image', 'method')]
for o in a.others:
    imgs = sorted(set(scores[a.method]) & set(scores[o]))
    cells = []
    for k in metrics:
        x, y = ([float(scores[m][i][k]) for i in imgs] for m in (a.method, o))
        ci, d = bootstrap_ci(x, y), sum(x) / len(x) - sum(y) / len(y)
        mark = '' if ci is None else (' *' if not ci[0] <= 0 <= ci[1] else ' n.s.')
        cells.append(f"{k} {d:+.4f}" + ('' if ci is None else f" [{ci[0]:+.4f}, {ci[1]:+.4f}]{mark}"))
    print(f"{a.method} - {o} ({len(imgs)} images): " + '; '.join(cells))
