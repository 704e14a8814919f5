#!/usr/bin/env bash
# Re-scores cifar10-standard-v2 one defense at a time, as job partials under leaderboards/partials
# (resumable: finished defenses are skipped, the adversarial cache keeps finished batches).
#   scripts/rescore-v2.sh adaptive     # the adaptive level (per defense)
#   scripts/rescore-v2.sh gray-box     # then the shared levels, once the adaptive ones are in
#   scripts/rescore-v2.sh transfer
#   scripts/rescore-v2.sh all          # the three, in this order
#   shieldbench merge --protocol cifar10-standard-v2 --partials leaderboards/partials
# A defense counts as done at a level when its partial for that level, or its merged result (all levels), is
# in the checkout under this protocol's identity; only the adaptive partials (per-image stage outcomes, read by
# scripts/v2_rows.py) and those of rows not yet merged are committed: a merged result holds the rest compactly.
# Run it in the background at low priority: nohup nice -n 19 scripts/rescore-v2.sh adaptive > v2.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
level=${1:-adaptive}
if [ "$level" = all ]; then  # every level, one after the other
  for l in adaptive gray-box transfer; do "$0" "$l" || exit; done
  exit
fi
py=${PYTHON:-.venv/bin/python}
mapfile -t defenses < <("$py" -c "import bench; print('\n'.join(bench.load_protocol('cifar10-standard-v2').defenses))")
# highest v1 adaptive numbers first: they are the rows v2 is most likely to change; then the cheap
# deterministic rows, and the randomized ones (hours each) last: quilting() first of those (v1's top row, one
# surrogate), then tvm() (its stages through its unrolled own gradient are the longest single batches: a stopped
# session loses the batch in progress), shield() last (four members: the dearest by far)
order=("jpeg(quality=10)" "median(size=5)" "fd(s1=90, s2=60)" "jpeg(quality=20)" "tvd(weight=0.1)" "jpeg(quality=30)"
       "tvd(weight=0.05)" "median(size=3)" "fd()" "fd(passes=2)" "jpeg(quality=75)" "jpeg(quality=50)"
       "identity()" "jpeg(quality=90)" "fd(preset='code')" "fd(preset='code', passes=2)" "bitdepth(bits=3)"
       "bitdepth(bits=4)" "bitdepth(bits=5)" "slq()" "quilting()" "tvm()" "shield()")
for d in "${defenses[@]}"; do [[ " ${order[*]} " == *" $d "* ]] || order+=("$d"); done
for d in "${order[@]}"; do
  # a partial counts as done only if it was scored under this protocol (its identity: bench.eval.protocol)
  state=$("$py" -c "import json, sys; from pathlib import Path
import bench; from bench.core.defense import build_defense; from bench.eval.jobs import Selection
from bench.eval.protocol import same_protocol; from bench.eval.results import result_filename
spec = build_defense(sys.argv[1]).spec  # the partial's directory is named after the canonical spec: tvm() is tvm(drop=...)
f = Path(f'leaderboards/partials/cifar10-standard-v2/{result_filename(spec)[:-5]}/shard-1-of-1-'
         f'{Selection((), (sys.argv[2],)).tag}.json')
p = bench.load_protocol('cifar10-standard-v2')
merged = Path('leaderboards/results/cifar10-standard-v2') / result_filename(spec)  # every level, merged
for g in (merged, f):
    if g.is_file() and same_protocol(json.loads(g.read_text())['protocol'], p):
        print('done ' + str(g)); break
else:
    print(('stale ' if f.is_file() else 'todo ') + str(f))" "$d" "$level")
  case "$state" in
    done*) echo "=== skip $d (present: ${state#done })"; continue ;;
    stale*) echo "=== $d: partial ${state#stale } is from another version of the protocol file: re-scoring it" ;;
  esac
  echo "=== $(date -u +%FT%TZ) start $d ($level)"
  /usr/bin/time -f "=== %e s wall, %U s user: $d" "$py" -m bench run --protocol cifar10-standard-v2 --defense "$d" \
    --knowledge "$level" --partials leaderboards/partials
done
