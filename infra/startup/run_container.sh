#!/usr/bin/env bash
# Startup script of every pilotstate VM: training, tuning chief, tuning worker.
#
# It runs the trainer image once, with all the VM's GPUs, and then deletes this
# VM whatever happened: the EXIT trap runs when the container exits with any
# status, when a step before it fails (no driver, no image, bad metadata) and
# when systemd stops the script.  The launcher (python -m infra) also gives the
# VM --max-run-duration with --instance-termination-action=DELETE, in case this
# script never ends.
#
# Everything comes from the instance's metadata, set by the launcher:
#   pilotstate-image           the image URI in Artifact Registry
#   pilotstate-entrypoint      entry point override; empty = the image's own
#   pilotstate-args            the container's arguments, separated by spaces
#   pilotstate-env             KEY=VALUE environment of the container, separated by spaces
#   pilotstate-gpus            "all": wait for the NVIDIA driver, run with --gpus all; "none"
#   pilotstate-driver-timeout  seconds to wait for the NVIDIA driver
set -euo pipefail

readonly METADATA_URL="http://metadata.google.internal/computeMetadata/v1/instance"

# metadata PATH: a value of this instance from the metadata server.
metadata() {
  curl --silent --show-error --fail --retry 5 \
    --header "Metadata-Flavor: Google" "${METADATA_URL}/$1"
}

# shellcheck disable=SC2317  # called by the EXIT trap, which shellcheck cannot see
delete_this_vm() {
  local status=$?
  trap - EXIT
  set +e
  echo "pilotstate: finished with status ${status}; deleting this VM"
  local name zone attempt
  name=$(metadata name) || name=$(hostname --short)
  zone=$(metadata zone)  # projects/NUMBER/zones/ZONE
  for attempt in 1 2 3; do
    if gcloud --quiet compute instances delete "${name}" --zone="${zone##*/}"; then
      break
    fi
    echo "pilotstate: deleting this VM failed (attempt ${attempt}); retrying" >&2
    sleep 30
  done
  exit "${status}"
}
trap delete_this_vm EXIT
trap 'exit 143' TERM INT HUP

# wait_for_driver SECONDS: until nvidia-smi works (the image may install the driver at boot).
wait_for_driver() {
  local deadline=$((SECONDS + $1))
  until nvidia-smi > /dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "pilotstate: no working NVIDIA driver after $1 s" >&2
      return 1
    fi
    sleep 10
  done
  nvidia-smi --query-gpu=name,memory.total --format=csv
}

image=$(metadata attributes/pilotstate-image)
entrypoint=$(metadata attributes/pilotstate-entrypoint)
args_text=$(metadata attributes/pilotstate-args)
env_text=$(metadata attributes/pilotstate-env)
gpus=$(metadata attributes/pilotstate-gpus)
driver_timeout=$(metadata attributes/pilotstate-driver-timeout)

read -r -a container_args <<< "${args_text}"
read -r -a env_pairs <<< "${env_text}"

run_flags=(--rm --network=host --name=pilotstate)
case "${gpus}" in
  all)
    wait_for_driver "${driver_timeout}"
    run_flags+=(--gpus all)
    ;;
  none) ;;
  *)
    echo "pilotstate: pilotstate-gpus must be 'all' or 'none', got '${gpus}'" >&2
    exit 2
    ;;
esac
for pair in "${env_pairs[@]}"; do
  run_flags+=(--env "${pair}")
done
if [[ -n "${entrypoint}" ]]; then
  run_flags+=(--entrypoint "${entrypoint}")
fi

# Docker pulls from Artifact Registry with the VM's service account.
gcloud --quiet auth configure-docker "${image%%/*}"
status=0
docker run "${run_flags[@]}" "${image}" "${container_args[@]}" || status=$?
echo "pilotstate: the container exited with status ${status}"
exit "${status}"
