#!/usr/bin/env bash
# Start `mmkit run` for one symbol; what systemd's mmkit@SYMBOL.service runs (deploy/README.md).
#
#   scripts/run_runner.sh ETHUSDC [extra `mmkit run` options, e.g. --position 0]
#
# Environment (the unit sets these, /etc/mmkit/SYMBOL.env may override them):
#   MMKIT_CONFIG          config file (default /etc/mmkit/config.yaml); must exist
#   MMKIT_VENV            virtualenv holding mmkit (default: ../venv or ../.venv beside this
#                         script, then /opt/mmkit/venv, then `mmkit` on PATH)
#   MMKIT_LIVE=1          required to trade real money: only then is `--live` passed
#   MMKIT_GATEWAY_VENUE   venue override (else gateway.venue of the config)
#   MM_GATEWAY_API_KEY / MM_GATEWAY_API_SECRET   read by mmkit itself; never printed here
#
# Exit 2 (no restart under systemd): bad symbol, missing config or mmkit, or a live venue
# without MMKIT_LIVE=1. The runner is exec'd so that systemd's SIGTERM reaches it directly
# (cancel all, countdown off, summary, exit 0).
set -euo pipefail

say() {  # one JSON log line on stderr, like mmkit's own (docs/operations.md); never secrets
  local level=$1 event=$2 msg=$3
  msg=${msg//\\/\\\\}
  msg=${msg//\"/\\\"}
  printf '{"ts":"%s","level":"%s","event":"%s","logger":"run_runner","msg":"%s","symbol":"%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$level" "$event" "$msg" "${symbol:-}" >&2
}
die() { say error runner_refused "$1"; exit "${2:-2}"; }

[ $# -ge 1 ] || { echo "usage: $0 SYMBOL [mmkit run options]" >&2; exit 2; }
[[ ${1^^} =~ ^[A-Z0-9]{2,30}$ ]] || die "not a symbol: upper-case letters and digits only"
symbol=${1^^}
shift
for arg in "$@"; do
  [ "$arg" != "--live" ] || die "--live is not an option here: set MMKIT_LIVE=1 instead"
done

# The virtualenv.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mmkit=
if [ -n "${MMKIT_VENV:-}" ]; then
  [ -x "$MMKIT_VENV/bin/mmkit" ] || die "MMKIT_VENV=$MMKIT_VENV has no bin/mmkit"
  mmkit=$MMKIT_VENV/bin/mmkit
else
  for venv in "$here/../venv" "$here/../.venv" /opt/mmkit/venv; do
    if [ -x "$venv/bin/mmkit" ]; then mmkit=$venv/bin/mmkit; break; fi
  done
  [ -n "$mmkit" ] || mmkit=$(command -v mmkit) || die "mmkit not found: set MMKIT_VENV"
fi

# The config.
config=${MMKIT_CONFIG:-/etc/mmkit/config.yaml}
if [ ! -f "$config" ] || [ ! -r "$config" ]; then die "config not found or not readable: $config"; fi
export MMKIT_CONFIG=$config

# The venue: env override, else gateway.venue of the config (block YAML, as in
# configs/config.example.yaml), else mmkit's default, sim.
venue=${MMKIT_GATEWAY_VENUE:-}
if [ -z "$venue" ]; then
  venue=$(awk '
    /^[^[:space:]#]/ { in_gateway = ($0 ~ /^gateway:[[:space:]]*(#.*)?$/); next }
    in_gateway && /^[[:space:]]+venue:/ {
      v = $0
      sub(/^[[:space:]]+venue:[[:space:]]*/, "", v)
      sub(/[[:space:]]*#.*$/, "", v)
      gsub(/["'\''[:space:]]/, "", v)
      print v
      exit
    }' "$config")
fi
venue=${venue:-sim}
venue=${venue,,}

# Real money only with an explicit MMKIT_LIVE=1. Even if the venue were misread above, mmkit
# itself refuses the live venue without --live, and --live is passed only here.
live_args=()
if [ "${MMKIT_LIVE:-0}" = "1" ]; then
  live_args=(--live)
elif [ "$venue" = "live" ]; then
  die "refusing the live venue without MMKIT_LIVE=1 (config $config)"
fi

say info runner_start "exec $mmkit run symbol=$symbol venue=$venue live=${MMKIT_LIVE:-0} config=$config"
exec "$mmkit" --config "$config" run --symbol "$symbol" --lines "${live_args[@]}" "$@"
