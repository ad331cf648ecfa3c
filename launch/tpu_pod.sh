#!/usr/bin/env bash
# Train on a Cloud TPU pod slice: create the TPU VM (optional), install s1jax on every host, run the same command on
# every worker. jax.distributed.initialize() needs no arguments on TPU VMs (distributed.mode=auto detects the pod).
#
#   TPU_NAME=s1-v5p ZONE=us-east5-a ACCELERATOR=v5p-128 ./launch/tpu_pod.sh create
#   TPU_NAME=s1-v5p ZONE=us-east5-a ./launch/tpu_pod.sh install
#   TPU_NAME=s1-v5p ZONE=us-east5-a ./launch/tpu_pod.sh train --config=configs/train/s1_32b.py:v5p-128
#   TPU_NAME=s1-v5p ZONE=us-east5-a ./launch/tpu_pod.sh stop    # SIGTERM: checkpoint at the next step, exit
#   PREFLIGHT=1 ... train ...   # first compile the train step for the slice on this host (s1jax compile); stop if it
#                               # does not fit (needs the aot extra here: make aot)
#
# Checkpoints must go to storage every host can reach (a gs:// bucket works with Orbax):
#   --config.train.output_dir=gs://BUCKET/runs/s1-32b
set -euo pipefail
source "$(dirname "$0")/preflight.sh"

: "${TPU_NAME:?set TPU_NAME}"
: "${ZONE:?set ZONE}"
PROJECT_FLAG=${PROJECT:+--project=$PROJECT}
ACCELERATOR=${ACCELERATOR:-v5p-128}
RUNTIME=${RUNTIME:-v2-alpha-tpuv5}
REPO_URL=${REPO_URL:-}            # git URL of s1jax; empty: copy this checkout with scp
WORKDIR=${WORKDIR:-s1jax}

ssh_all() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" $PROJECT_FLAG --worker=all --command="$1"
}

cmd=${1:-help}
shift || true
case "$cmd" in
  create)
    gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" $PROJECT_FLAG \
      --accelerator-type="$ACCELERATOR" --version="$RUNTIME" ${SPOT:+--spot}
    ;;
  install)
    if [[ -n "$REPO_URL" ]]; then
      ssh_all "rm -rf $WORKDIR && git clone $REPO_URL $WORKDIR"
    else
      tar czf /tmp/s1jax_src.tgz --exclude=.venv --exclude=runs --exclude=.git .
      gcloud compute tpus tpu-vm scp /tmp/s1jax_src.tgz "$TPU_NAME":~/ --zone="$ZONE" $PROJECT_FLAG --worker=all
      ssh_all "rm -rf $WORKDIR && mkdir -p $WORKDIR && tar xzf s1jax_src.tgz -C $WORKDIR"
    fi
    ssh_all "cd $WORKDIR && python3 -m venv .venv && .venv/bin/pip install -q -U pip && .venv/bin/pip install -q -e '.[tpu]'"
    ;;
  train)
    preflight "$@"
    # Same command on every host; each process loads its slice of the global batch.
    args=$(printf ' %q' "$@")
    ssh_all "cd $WORKDIR && (nohup .venv/bin/s1jax train $args > train.log 2>&1 & echo \$! > train.pid)"
    echo "started on all workers; follow with: $0 logs"
    ;;
  logs)
    gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" $PROJECT_FLAG --worker=0 --command="tail -f $WORKDIR/train.log"
    ;;
  stop)
    ssh_all "cd $WORKDIR && kill -TERM \$(cat train.pid) 2>/dev/null || true"
    ;;
  delete)
    gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone="$ZONE" $PROJECT_FLAG --quiet
    ;;
  *)
    sed -n '2,15p' "$0"
    ;;
esac
