#!/usr/bin/env bash
# Train on a Cloud TPU pod slice: create the TPU VM (optional), install s1jax on every host, run the same command on
# every worker. jax.distributed.initialize() needs no arguments on TPU VMs (distributed.mode=auto detects the pod).
#
#   TPU_NAME=s1-v5p ZONE=us-east5-a ACCELERATOR=v5p-128 ./launch/tpu_pod.sh create
#   TPU_NAME=s1-v5p ZONE=us-east5-a ./launch/tpu_pod.sh install
#   TPU_NAME=s1-v5p ZONE=us-east5-a ./launch/tpu_pod.sh train --config=configs/train/s1_32b.py:v5p-128
#   TPU_NAME=s1-v5p ZONE=us-east5-a ./launch/tpu_pod.sh stop    # SIGTERM: checkpoint at the next step, exit 75
#   TPU_NAME=s1-v5p ZONE=us-east5-a ./launch/tpu_pod.sh status  # exit code of the last run (train.exit), if ended
#
# Spot / preemptible capacity through a queued resource, requeued until the run ends:
#   TPU_NAME=s1-v5p ZONE=us-east5-a ACCELERATOR=v5p-128 SPOT=1 ./launch/tpu_pod.sh supervise --config=...
# `supervise` (run it on a machine that is not the TPU, e.g. in tmux) creates the queued resource when missing,
# waits until it is ACTIVE, installs, trains, and on exit 75 ("preempted, checkpoint saved") or a vanished slice
# deletes and re-creates the queued resource and resumes; any other exit code ends it with that code.
# Exit codes (s1jax/exit_codes.py): 0 finished, 1 error, 2 config error, 3 non-finite loss, 74 storage failure,
# 75 preempted (checkpoint saved: requeue), 130 Ctrl-C (checkpoint saved).
#   PREFLIGHT=1 ... train ...   # first compile the train step for the slice on this host (s1jax compile); stop if it
#                               # does not fit (needs the aot extra here: make aot)
#
# Checkpoints must go to storage every host can reach (a gs:// bucket works with Orbax):
#   --config.train.output_dir=gs://BUCKET/runs/s1-32b
set -euo pipefail
source "$(dirname "$0")/preflight.sh"

PREEMPTED_EXIT=75

: "${TPU_NAME:?set TPU_NAME}"
: "${ZONE:?set ZONE}"
PROJECT_FLAG=${PROJECT:+--project=$PROJECT}
ACCELERATOR=${ACCELERATOR:-v5p-128}
RUNTIME=${RUNTIME:-v2-alpha-tpuv5}
REPO_URL=${REPO_URL:-}            # git URL of s1jax; empty: copy this checkout with scp
WORKDIR=${WORKDIR:-s1jax}
QR_NAME=${QR_NAME:-$TPU_NAME-qr}  # queued resource name (supervise)
POLL_S=${POLL_S:-60}

ssh_all() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" $PROJECT_FLAG --worker=all --command="$1"
}

ssh0() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" $PROJECT_FLAG --worker=0 --command="$1"
}

qr_state() {  # ACTIVE, WAITING_FOR_RESOURCES, SUSPENDED, FAILED, ... or NONE
  gcloud compute tpus queued-resources describe "$QR_NAME" --zone="$ZONE" $PROJECT_FLAG \
    --format='value(state.state)' 2>/dev/null || echo NONE
}

qr_ensure_active() {  # (re)create the queued resource unless it is usable, then wait until ACTIVE
  local state
  state=$(qr_state)
  case "$state" in
    SUSPENDED|FAILED|SUSPENDING)
      gcloud compute tpus queued-resources delete "$QR_NAME" --zone="$ZONE" $PROJECT_FLAG --force --quiet
      state=NONE ;;
  esac
  if [[ "$state" == NONE || -z "$state" ]]; then
    gcloud compute tpus queued-resources create "$QR_NAME" --node-id="$TPU_NAME" --zone="$ZONE" $PROJECT_FLAG \
      --accelerator-type="$ACCELERATOR" --runtime-version="$RUNTIME" ${SPOT:+--spot}
  fi
  until [[ "$(qr_state)" == ACTIVE ]]; do sleep "$POLL_S"; done
}

start_training() {  # same command on every host, in the background; the exit code lands in train.exit
  local args
  args=$(printf ' %q' "$@")
  # train.pid is the trainer itself (what `stop` signals); the shell around it records the exit code
  ssh_all "cd $WORKDIR && rm -f train.exit && (nohup sh -c '.venv/bin/s1jax train $args & echo \$! > train.pid; \
    wait \$!; echo \$? > train.exit' > train.log 2>&1 &)"
}

wait_for_exit() {  # prints worker 0's exit code; $PREEMPTED_EXIT when the slice went away under the run
  local rc
  while true; do
    sleep "$POLL_S"
    if rc=$(ssh0 "cat $WORKDIR/train.exit 2>/dev/null || echo running" 2>/dev/null); then
      [[ "$rc" != running ]] && { echo "$rc"; return; }
    elif [[ "$(qr_state)" != ACTIVE ]]; then
      echo "$PREEMPTED_EXIT"; return
    fi
  done
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
    start_training "$@"
    echo "started on all workers; follow with: $0 logs; exit code: $0 status"
    ;;
  status)
    ssh0 "cat $WORKDIR/train.exit 2>/dev/null || echo running"
    ;;
  supervise)
    while true; do
      qr_ensure_active
      "$0" install
      start_training "$@"
      rc=$(wait_for_exit)
      if [[ "$rc" == "$PREEMPTED_EXIT" ]]; then
        echo "tpu_pod.sh: preempted (exit $rc): requeueing the queued resource $QR_NAME and resuming" >&2
        continue
      fi
      echo "tpu_pod.sh: training ended with exit code $rc" >&2
      exit "$rc"
    done
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
    sed -n '2,27p' "$0"
    ;;
esac
