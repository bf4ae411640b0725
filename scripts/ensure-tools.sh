#!/usr/bin/env bash
# Makes sure the external tools the test suite drives are present. On CI (CI=true, running as root) missing
# Debian packages are installed; elsewhere the script only reports what to install. Tests that need a tool still
# fail loudly on their own if it is missing: this script is a convenience, not a way to skip anything.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/"$1" >/dev/null 2>&1; }

have initdb    || missing+=(postgresql)
have pg_dump   || missing+=(postgresql-client)
have mariadbd  || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
have mysqldump || missing+=(mariadb-client)
have unshare   || missing+=(util-linux)
have runuser   || missing+=(util-linux)
have tar       || missing+=(tar)
have gzip      || missing+=(gzip)
have zstd      || missing+=(zstd)
# scripts/cluster (the real-cluster tests) signs certificates, polls health endpoints and picks free ports.
have openssl   || missing+=(openssl)
have curl      || missing+=(curl)
have ss        || missing+=(iproute2)
# kube-sim's kubelet shows the processes it runs the simulated clock through libfaketime.
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1 ] \
  || missing+=(libfaketime)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "${CI:-}" = "true" ] && [ "$(id -u)" = "0" ]; then
    echo "ensure-tools: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "ensure-tools: missing tools; install with: sudo apt-get install ${missing[*]}" >&2
  fi
fi

if ! command -v kubectl >/dev/null 2>&1; then
  echo "ensure-tools: kubectl is not installed; the kubectl fidelity tests will fail." >&2
  echo "  Install a kubectl client (e.g. 'apt-get install kubectl' from the Kubernetes apt repository)." >&2
fi

# Helm (for the chart tests) lives in a tools directory outside the checkout; see scripts/install-helm.sh.
helm_path="${HELM:-${BACKUP_NS_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/backup-ns/tools}/helm}"
if [ ! -x "$helm_path" ]; then
  if [ "${CI:-}" = "true" ]; then
    "$(dirname "$0")/install-helm.sh" >/dev/null
  else
    echo "ensure-tools: helm is not installed; the chart tests will fail. Install with: scripts/install-helm.sh" >&2
  fi
fi

# The real-cluster tests build Kubernetes from Go modules on first use (scripts/cluster build, cached in
# ~/.cache/backup-ns/k8s, so later runs on the same machine reuse the binaries).
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "ensure-tools: Go is not installed; the real-cluster tests will fail." >&2
  echo "  Install Go 1.26 or newer (https://go.dev/dl/) and make sure the Go module proxy is reachable." >&2
fi

# cargo-fuzz for scripts/fuzz (CI runs every fuzz target for a bounded time).
if ! cargo fuzz --help >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    echo "ensure-tools: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
  else
    echo "ensure-tools: cargo-fuzz is not installed; scripts/fuzz will fail. Install with: cargo install cargo-fuzz --locked" >&2
  fi
fi
