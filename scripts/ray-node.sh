#!/usr/bin/env bash
# One node of a ray-scribe Ray cluster, with every port pinned and token auth on.
#
#   scripts/ray-node.sh head [RAY_START_ARGS]                start the head (GCS, dashboard,
#                                                            client server)
#   scripts/ray-node.sh worker HEAD_IP:PORT [RAY_START_ARGS] join the head at its GCS port
#   scripts/ray-node.sh ports [head|worker]   the TCP ports this node listens on, one per line
#   scripts/ray-node.sh resources             the CPUs and memory this node would advertise
#
# Vast.ai instances are containers whose ports are mapped, so Ray may only use ports that
# are declared and mapped; nothing here lets Ray pick one at random. As a Vast.ai on-start
# script: set SCRIBE_ROLE=head|worker (and SCRIBE_HEAD=IP:PORT for workers) in the
# template's environment and run this with no arguments. Ports come from, in order: the
# RAY_*_PORT variables below, Vast.ai identity ports (-p 70000:70000 ... -p 70041:70041,
# whose numbers Vast.ai picks and passes as $VAST_TCP_PORT_700xx), or the defaults.
#
# Token auth: the head makes a token (`ray get-auth-token --generate`, kept in
# ~/.ray/auth_token) unless RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH gives one; every worker
# and every client (laptop) needs the same token, and a worker refuses to start without
# it. Never commit the token. See docs/cluster.md.
#
# Other settings (environment): RAY_NODE_IP (the address other nodes reach this node at;
# default $PUBLIC_IPADDR on Vast.ai, else Ray's guess), RAY_NUM_CPUS, RAY_NUM_GPUS,
# RAY_MEMORY, RAY_OBJECT_STORE_MEMORY (bytes; computed from the cgroup limits when unset),
# RAY_RESOURCES (JSON), RAY_TEMP_DIR, RAY_BLOCK=1 (stay in the foreground),
# SCRIBE_INSTALL (a pip requirement to install first, e.g. 'ray-scribe[gpu] @ git+URL').
set -euo pipefail

PYTHON=${PYTHON:-python3}

# Vast.ai gives its identity ports and public address to the container's first process;
# an SSH session (the cluster launcher's) does not always inherit them.
if [[ -z "${VAST_TCP_PORT_70000:-}${PUBLIC_IPADDR:-}" ]]; then
  first_env=$({ tr '\0' '\n' </proc/1/environ; } 2>/dev/null) || first_env=""
  while IFS= read -r kv; do
    case "$kv" in VAST_TCP_PORT_*=* | PUBLIC_IPADDR=*) export "${kv?}" ;; esac
  done <<<"$first_env"
fi

# A port: its RAY_* variable, else the Vast.ai identity port in that slot, else the default.
port() {
  local var=$1 default=$2 vast="VAST_TCP_PORT_$3"
  if [[ -n "${!var:-}" ]]; then echo "${!var}"
  elif [[ -n "${!vast:-}" ]]; then echo "${!vast}"
  else echo "$default"; fi
}

GCS_PORT=$(port RAY_GCS_PORT 6379 70000)
DASHBOARD_PORT=$(port RAY_DASHBOARD_PORT 8265 70001)
CLIENT_PORT=$(port RAY_CLIENT_PORT 10001 70002)
NODE_MANAGER_PORT=$(port RAY_NODE_MANAGER_PORT 6380 70003)
OBJECT_MANAGER_PORT=$(port RAY_OBJECT_MANAGER_PORT 6381 70004)
RUNTIME_ENV_AGENT_PORT=$(port RAY_RUNTIME_ENV_AGENT_PORT 6382 70005)
AGENT_GRPC_PORT=$(port RAY_DASHBOARD_AGENT_GRPC_PORT 6383 70006)
AGENT_HTTP_PORT=$(port RAY_DASHBOARD_AGENT_HTTP_PORT 6384 70007)
METRICS_PORT=$(port RAY_METRICS_EXPORT_PORT 6385 70008)
SERVE_PORT=$(port SCRIBE_SERVE_PORT 8000 70009)
WORKER_SLOTS=32  # one port per worker process (tasks, actors, drivers) on this node

# Worker ports: a declared range (RAY_WORKER_PORTS=10002-10033), else the Vast.ai identity
# ports 70010.. (their numbers are not contiguous, so they go to Ray as a list).
worker_ports() {
  if [[ -n "${RAY_WORKER_PORTS:-}" ]]; then echo "$RAY_WORKER_PORTS"; return; fi
  if [[ -n "${VAST_TCP_PORT_70010:-}" ]]; then
    local list="" i var
    for ((i = 70010; i < 70010 + WORKER_SLOTS; i++)); do
      var="VAST_TCP_PORT_$i"
      [[ -n "${!var:-}" ]] && list+="${list:+,}${!var}"
    done
    echo "$list"; return
  fi
  echo "10002-$((10002 + WORKER_SLOTS - 1))"
}
WORKER_PORTS=$(worker_ports)

worker_port_flags() {
  if [[ "$WORKER_PORTS" == *-* ]]; then
    printf '%s\n' "--min-worker-port=${WORKER_PORTS%-*}" "--max-worker-port=${WORKER_PORTS#*-}"
  else
    printf '%s\n' "--worker-port-list=$WORKER_PORTS"
  fi
}

print_ports() {
  local role=${1:-head}
  if [[ "$role" == head ]]; then printf '%s\n' "$GCS_PORT" "$DASHBOARD_PORT" "$CLIENT_PORT"; fi
  printf '%s\n' "$NODE_MANAGER_PORT" "$OBJECT_MANAGER_PORT" "$RUNTIME_ENV_AGENT_PORT" \
    "$AGENT_GRPC_PORT" "$AGENT_HTTP_PORT" "$METRICS_PORT" "$SERVE_PORT"
  tr ',' '\n' <<<"$WORKER_PORTS"
}

# What the container really has: cgroup limits first (Vast.ai, Docker), then the host's.
cpus() {
  local n quota period
  n=$(nproc)
  if [[ -r /sys/fs/cgroup/cpu.max ]]; then
    read -r quota period </sys/fs/cgroup/cpu.max
    if [[ "$quota" != max ]]; then n=$(( (quota + period - 1) / period < n ? (quota + period - 1) / period : n )); fi
  fi
  echo "$n"
}

memory_limit() {
  local total limit
  total=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 1024 ))
  for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
    if [[ -r $f ]]; then limit=$(cat "$f"); [[ "$limit" =~ ^[0-9]+$ && $limit -lt $total ]] && total=$limit; fi
  done
  echo "$total"
}

shm_size() { df --output=size -B1 /dev/shm 2>/dev/null | tail -1 | tr -d ' ' || echo 0; }

# Object store: 30% of memory (Ray's default share), but within /dev/shm, which Docker
# often sizes far smaller than RAM; Ray's tasks and actors get 90% of the rest.
resources() {
  local limit store shm
  limit=$(memory_limit)
  store=${RAY_OBJECT_STORE_MEMORY:-$(( limit * 3 / 10 ))}
  shm=$(shm_size)
  if [[ -z "${RAY_OBJECT_STORE_MEMORY:-}" && $shm -gt 0 && $store -gt $(( shm * 9 / 10 )) ]]; then
    store=$(( shm * 9 / 10 ))
  fi
  echo "NUM_CPUS=${RAY_NUM_CPUS:-$(cpus)}"
  echo "MEMORY=${RAY_MEMORY:-$(( (limit - store) * 9 / 10 ))}"
  echo "OBJECT_STORE_MEMORY=$store"
}

# CTranslate2 opens libcublas.so.12 by name: put the pip wheels' lib folders (the gpu
# extra) on the loader's path before Ray starts, so every worker inherits it.
cuda_library_path() {
  "$PYTHON" - <<'EOF' 2>/dev/null || true
import importlib.util, os
dirs = []
for name in ("nvidia.cublas", "nvidia.cudnn", "nvidia.cuda_runtime"):
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        continue
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if os.path.isdir(os.path.join(loc, "lib")):
            dirs.append(os.path.join(loc, "lib"))
print(":".join(dirs))
EOF
}

setup_token() {
  export RAY_AUTH_MODE=token
  local path=${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}
  if [[ -n "${RAY_AUTH_TOKEN:-}" || -s "$path" ]]; then return; fi
  if [[ "$1" == head ]]; then
    ray get-auth-token --generate >/dev/null
    echo "ray-node: made a token in $path; give it to workers and clients (ray get-auth-token)" >&2
  else
    echo "ray-node: no token: set RAY_AUTH_TOKEN (from \`ray get-auth-token\` on the head)" >&2
    exit 2
  fi
}

start() {
  local role=$1 head=${2:-}
  shift 2
  [[ -n "${SCRIBE_INSTALL:-}" ]] && "$PYTHON" -m pip install -q "$SCRIBE_INSTALL"
  setup_token "$role"
  local libs; libs=$(cuda_library_path)
  [[ -n "$libs" ]] && export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export SCRIBE_SERVE_PORT=$SERVE_PORT
  if [[ -z "${SCRIBE_API_KEYS:-}" ]]; then
    echo "ray-node: SCRIBE_API_KEYS is unset: Serve on port $SERVE_PORT answers anyone;" \
      "set it on every node before exposing that port" >&2
  fi
  eval "$(resources)"
  local args=(
    --node-manager-port="$NODE_MANAGER_PORT" --object-manager-port="$OBJECT_MANAGER_PORT"
    --runtime-env-agent-port="$RUNTIME_ENV_AGENT_PORT"
    --dashboard-agent-grpc-port="$AGENT_GRPC_PORT" --dashboard-agent-listen-port="$AGENT_HTTP_PORT"
    --metrics-export-port="$METRICS_PORT"
    --num-cpus="$NUM_CPUS" --memory="$MEMORY" --object-store-memory="$OBJECT_STORE_MEMORY"
    --disable-usage-stats
  )
  local flags; mapfile -t flags < <(worker_port_flags)
  args+=("${flags[@]}")
  local ip=${RAY_NODE_IP:-${PUBLIC_IPADDR:-}}
  [[ -n "$ip" ]] && args+=(--node-ip-address="$ip")
  [[ -n "${RAY_NUM_GPUS:-}" ]] && args+=(--num-gpus="$RAY_NUM_GPUS")
  [[ -n "${RAY_RESOURCES:-}" ]] && args+=(--resources="$RAY_RESOURCES")
  [[ -n "${RAY_TEMP_DIR:-}" ]] && args+=(--temp-dir="$RAY_TEMP_DIR")
  [[ "${RAY_BLOCK:-0}" == 1 ]] && args+=(--block)
  args+=("$@")
  if [[ "$role" == head ]]; then
    # The dashboard also takes job submissions: it listens on every interface, and token
    # auth turns away any request without the token.
    exec ray start --head --port="$GCS_PORT" --ray-client-server-port="$CLIENT_PORT" \
      --include-dashboard=true --dashboard-host=0.0.0.0 --dashboard-port="$DASHBOARD_PORT" \
      "${args[@]}"
  fi
  [[ -n "$head" ]] || { echo "usage: $0 worker HEAD_IP:PORT" >&2; exit 2; }
  exec ray start --address="$head" "${args[@]}"
}

role=${1:-${SCRIBE_ROLE:-}}
case "$role" in
  head) start head "" "${@:2}" ;;
  worker) start worker "${2:-${SCRIBE_HEAD:-}}" "${@:3}" ;;
  ports) print_ports "${2:-head}" ;;
  resources) resources ;;
  *) sed -n '2,7p' "$0" >&2; exit 2 ;;
esac
