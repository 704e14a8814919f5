#!/usr/bin/env bash
# Trains the whole model zoo, in order, with the exact commands recorded in the model cards.
# Every step checkpoints each epoch under ~/.cache/shieldbench/runs/ and resumes when re-run;
# a model whose zoo card already records the step's configuration is skipped. Run it in the
# background:
#   nohup scripts/train_zoo.sh > ~/.cache/shieldbench/logs/zoo.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
SB=${SHIELDBENCH:-shieldbench}

# never run two trainings at once on a small machine: wait for any running one to finish
while pgrep -f "shieldbench train" > /dev/null; do sleep 60; done

in_zoo() {  # in_zoo NAME ARGS...: the card NAME exists and its config has every --key value of ARGS
  python3 - "$@" <<'PY'
import json, sys
from pathlib import Path
name, args = sys.argv[1], sys.argv[2:]
card = Path("bench/zoo/weights") / f"{name}.json"
if not card.exists():
    sys.exit(1)
card = json.loads(card.read_text())
config = card["config"]
pairs = zip(args[0::2], args[1::2])
if not all(str(config.get(k[2:].replace("-", "_"))) == v for k, v in pairs):
    sys.exit(1)
init = card.get("init_from")  # fine-tuned: stale once the model it started from was retrained
if init:
    start = Path("bench/zoo/weights") / f"{init['name']}.json"
    if not start.exists() or json.loads(start.read_text())["weights_sha256"] != init["weights_sha256"]:
        sys.exit(1)
PY
}

step() {  # step NAME ARGS...: train unless the zoo already has NAME trained with ARGS
  local name=$1; shift
  if in_zoo "$name" "$@"; then echo "$name: in the zoo, skipped"; return; fi
  echo "$name: $SB train $* --name $name"
  "$SB" train "$@" --name "$name"
}

# resnet20: two 40-epoch cosine cycles (warm restart); one 40-epoch cycle reached 87.2%
step resnet20 --arch resnet20 --seed 0 --epochs 80 --cycles 2
# the vaccinated models come before resnet32: they fine-tune from resnet20 (short), and the
# SHIELD protocol needs them but not the transfer source
for q in 20 40 60 80; do  # SHIELD's vaccinated models: the base fine-tuned on jpeg(quality=q) images
  step "resnet20-vacc-q$q" --arch resnet20 --seed 0 --epochs 6 --lr 0.02 --warmup-epochs 0.5 \
    --init-from resnet20 --transform "jpeg(quality=$q)"
done
step resnet32 --arch resnet32 --seed 1 --epochs 25
