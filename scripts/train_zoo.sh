#!/usr/bin/env bash
# Trains the whole model zoo, in order, with the exact commands recorded in the model cards.
# Every step checkpoints each epoch under ~/.cache/shieldbench/runs/ and resumes when re-run;
# a model already in the zoo is skipped. Run it in the background:
#   nohup scripts/train_zoo.sh > ~/.cache/shieldbench/logs/zoo.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
SB=${SHIELDBENCH:-shieldbench}

# never run two trainings at once on a small machine: wait for any running one to finish
while pgrep -f "shieldbench train" > /dev/null; do sleep 60; done

step() {  # step NAME ARGS...: train unless bench/zoo/NAME.json exists
  local name=$1; shift
  if [[ -f bench/zoo/$name.json ]]; then echo "$name: in the zoo, skipped"; return; fi
  echo "$name: $SB train $* --name $name"
  "$SB" train "$@" --name "$name"
}

step resnet20 --arch resnet20 --seed 0 --epochs 40
step resnet32 --arch resnet32 --seed 1 --epochs 25
for q in 20 40 60 80; do  # SHIELD's vaccinated models: the base fine-tuned on jpeg(quality=q) images
  step "resnet20-vacc-q$q" --arch resnet20 --seed 0 --epochs 6 --lr 0.02 --warmup-epochs 0.5 \
    --init-from resnet20 --transform "jpeg(quality=$q)"
done
