#!/usr/bin/env bash
# The scaling campaign (docs/scaling/README.md), in resumable pieces.
#
#   scripts/scaling_campaign.sh train SEED UNTIL    # the long wsd run of seed SEED, continued up to step UNTIL
#   scripts/scaling_campaign.sh branch SEED BUDGET  # finish budget BUDGET off that run, export it (calibrated, mode probe)
#   scripts/scaling_campaign.sh measure SEED BUDGET # the study's measures of that model -> runs/scaling/study/runs.jsonl
#   scripts/scaling_campaign.sh snapshot SEED       # copy what resuming needs into campaign/sSEED (committed)
#
# VARIANT=equivariant|contrastive|masked trains that single-objective variant on the same recipe,
# data, seed and schedule (issue 32's equal budget) into runs/scaling/sSEED-VARIANT, snapshot
# campaign/sSEED-VARIANT, models runs/scaling/models/sSEED-VARIANT-bBUDGET; the default is mt2.
#
# Each train and branch piece appends "action name step/budget start end" (name: sSEED, or sSEED-VARIANT) (unix seconds) to
# runs/scaling/sSEED/pieces.tsv (kept in the snapshot): the wall-clock each budget cost.
#
# The data are rebuilt by command where missing (data/medium: rendered; data/real: Debian packages).
# On a fresh machine `train` starts from the committed snapshot campaign/sSEED (last.ckpt, the
# branch checkpoints not yet finished, config.yaml, metrics.csv), so a cut-off costs the steps
# since the last snapshot. Every piece can be killed and run again.
set -euo pipefail
cd "$(dirname "$0")/.."
MT2=${MT2:-.venv/bin/mt2}
THREADS=${THREADS:-1}
VARIANT=${VARIANT:-mt2}
action=${1:?train, branch or snapshot}
seed=${2:?seed}
name=s$seed$([ "$VARIANT" = mt2 ] || echo "-$VARIANT")
run=runs/scaling/$name
snap=campaign/$name
cache=runs/scaling/cache

need_data() {
  [ -f data/medium/manifest.jsonl ] || $MT2 corpus render data/medium --size medium --seed 7
  # the campaign's real corpus: the 23 packages it was started on (mt2.corpus.soundtracks.CAMPAIGN_PACKAGES), 489 tracks
  [ -f data/real/manifest.jsonl ] || $MT2 corpus real data/real --packages $(.venv/bin/python -c \
    "from mt2.corpus.soundtracks import CAMPAIGN_PACKAGES; print(' '.join(CAMPAIGN_PACKAGES))")
}

case $action in
  train)
    until=${3:?until step}
    need_data
    if [ ! -f $run/last.ckpt ] && [ -f $snap/last.ckpt ]; then
      mkdir -p $run && cp $snap/* $run/
    fi
    start=$(date +%s)
    if [ -f $run/last.ckpt ]; then
      $MT2 pretrain --resume --out $run --until "$until" --cache-dir $cache --threads "$THREADS" --no-progress
    else
      $MT2 pretrain --data data/medium --real-data data/real --config docs/scaling/campaign.yaml --seed "$seed" --variant "$VARIANT" \
        --out $run --until "$until" --cache-dir $cache --threads "$THREADS" --no-progress
    fi
    printf 'train\t%s\t%s\t%s\t%s\n' "$name" "$until" "$start" "$(date +%s)" >> $run/pieces.tsv
    ;;
  branch)
    budget=${3:?budget}
    out=runs/scaling/$name-b$budget
    if [ ! -f $run/branch-$budget.ckpt ] && [ -f $snap/branch-$budget.ckpt ]; then
      mkdir -p $run && cp $snap/branch-$budget.ckpt $snap/config.yaml $run/
    fi
    start=$(date +%s)
    $MT2 pretrain --branch $run --budget "$budget" --out "$out" --cache-dir $cache --threads "$THREADS" --no-progress
    # the mode probe reads the equivariant token: mt2 and the equivariant variant have one
    probe=(--mode-probe data/medium)
    [ "$VARIANT" = mt2 ] || [ "$VARIANT" = equivariant ] || probe=()
    $MT2 export "$out/last.ckpt" runs/scaling/models/$name-b$budget "${probe[@]}"
    printf 'branch\t%s\t%s\t%s\t%s\n' "$name" "$budget" "$start" "$(date +%s)" >> $run/pieces.tsv
    ;;
  measure)
    budget=${3:?budget}
    $MT2 study --evaluate runs/scaling/models/$name-b$budget --corpus data/medium --real data/real \
      --out runs/scaling/study --threads "$THREADS"
    ;;
  snapshot)
    mkdir -p $snap
    for file in config.yaml last.ckpt metrics.csv pieces.tsv; do
      [ -f $run/$file ] || continue
      cp $run/$file $snap/.$file.tmp && mv $snap/.$file.tmp $snap/$file
    done
    for ckpt in $run/branch-*.ckpt; do
      [ -e "$ckpt" ] || continue
      budget=$(basename "$ckpt" .ckpt); budget=${budget#branch-}
      if [ -d runs/scaling/models/$name-b$budget ]; then
        rm -f $snap/branch-$budget.ckpt  # finished: its model is measured, the checkpoint is not needed again
      else
        cp "$ckpt" $snap/.tmp.ckpt && mv $snap/.tmp.ckpt $snap/branch-$budget.ckpt
      fi
    done
    ;;
  *)
    echo "unknown action $action: train, branch, measure or snapshot" >&2
    exit 2
    ;;
esac
