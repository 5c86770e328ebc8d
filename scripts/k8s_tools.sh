#!/bin/sh
# Print the directory of the pinned tools that validate deploy/kubernetes offline: kustomize,
# kubeconform, and the JSON schemas kubeconform checks against (Kubernetes and KEDA).
#
# The directory is ${XDG_CACHE_HOME:-~/.cache}/feedline/k8s/<pins>/ and holds
#   kustomize, kubeconform          built with `go install` from the Go module proxy
#   schemas/<kind><suffix>.json     kubeconform's layout: -schema-location 'DIR/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json'
#   kafka-scaler-params.txt         KEDA kafka scaler parameters: "name order" per line
#   VERSIONS                        the pins below
# Everything comes from the Go module proxy, at the versions pinned here (each builds with the
# machine's go1.26; newer kustomize and KEDA releases ask for go1.27):
#   kustomize    sigs.k8s.io/kustomize/kustomize/v5      v5.8.2
#   kubeconform  github.com/yannh/kubeconform            v0.8.0
#   Kubernetes   k8s.io/kubernetes                       v1.37.2  api/openapi-spec/swagger.json,
#                converted by scripts/k8s_schemas.py (standalone, strict)
#   KEDA         github.com/kedacore/keda/v2             v2.21.0  config/crd/bases/keda.sh_*.yaml,
#                converted by kubeconform's own scripts/openapi2jsonschema.py (strict, root too)
# kubeconform never fetches a schema itself: it gets only this local location.
#
# Usage: tools="$(scripts/k8s_tools.sh)" && kustomize build deploy/kubernetes/overlays/example |
#          "$tools/kubeconform" -strict -summary -schema-location "$tools/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json"
# Progress goes to stderr; stdout is only the path. Exit 1 with the reason when it fails.
# Needs: go (on PATH, /usr/local/go/bin/go, or $GO) and a Python with PyYAML (.venv's, $PYTHON).
set -eu

KUSTOMIZE_VERSION=v5.8.2
KUBECONFORM_VERSION=v0.8.0
KUBERNETES_VERSION=v1.37.2
KEDA_VERSION=v2.21.0

fail() {
    echo "k8s_tools.sh: $*" >&2
    exit 1
}

root="$(cd "$(dirname "$0")/.." && pwd)"
pins="kustomize-$KUSTOMIZE_VERSION.kubeconform-$KUBECONFORM_VERSION.k8s-$KUBERNETES_VERSION.keda-$KEDA_VERSION"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/feedline/k8s"
dir="$cache/$pins"
if [ -x "$dir/kustomize" ] && [ -x "$dir/kubeconform" ] && [ -f "$dir/VERSIONS" ] && [ -d "$dir/schemas" ]; then
    echo "$dir"
    exit 0
fi

go="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[ -x "$go" ] || fail "no Go toolchain (looked for go on PATH and /usr/local/go/bin/go; set GO=)"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3 || true)"
[ -n "$python" ] || fail "no Python (looked for .venv/bin/python and python3; set PYTHON=)"
"$python" -c 'import yaml' 2>/dev/null ||
    fail "$python has no PyYAML (run make setup first, or set PYTHON= to one that has it)"

work="$(mktemp -d)"
staging=""
trap 'rm -rf "$work" ${staging:+"$staging"}' EXIT
trap 'exit 130' INT TERM

# A private GOPATH and build cache: nothing lands in ~/go, and the module sources go away at
# exit. GOTOOLCHAIN=local: never fetch another Go; a pin that needs one fails here instead.
export GOPATH="$work/gopath" GOCACHE="$work/gocache" GOTOOLCHAIN=local
goflags="$("$go" env GOFLAGS)"
export GOFLAGS="$goflags -modcacherw"
mkdir -p "$cache"
staging="$(mktemp -d "$cache/.staging.XXXXXX")"

module_dir() {  # the extracted source of module@version
    "$go" mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

echo "k8s_tools.sh: building kustomize $KUSTOMIZE_VERSION and kubeconform $KUBECONFORM_VERSION into $dir (about a minute)" >&2
GOBIN="$staging" "$go" install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2 ||
    fail "go install kustomize $KUSTOMIZE_VERSION failed"
GOBIN="$staging" "$go" install \
    -ldflags "-X main.version=$KUBECONFORM_VERSION" \
    "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" >&2 ||
    fail "go install kubeconform $KUBECONFORM_VERSION failed"

echo "k8s_tools.sh: generating schemas from Kubernetes $KUBERNETES_VERSION and KEDA $KEDA_VERSION" >&2
k8s="$(module_dir "k8s.io/kubernetes@$KUBERNETES_VERSION")"
[ -f "$k8s/api/openapi-spec/swagger.json" ] || fail "k8s.io/kubernetes@$KUBERNETES_VERSION has no api/openapi-spec/swagger.json"
"$python" "$root/scripts/k8s_schemas.py" "$k8s/api/openapi-spec/swagger.json" "$staging/schemas" >&2
keda="$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")"
converter="$(module_dir "github.com/yannh/kubeconform@$KUBECONFORM_VERSION")/scripts/openapi2jsonschema.py"
[ -f "$converter" ] || fail "kubeconform $KUBECONFORM_VERSION has no scripts/openapi2jsonschema.py"
for crd in scaledobjects triggerauthentications; do
    file="$keda/config/crd/bases/keda.sh_$crd.yaml"
    [ -f "$file" ] || fail "KEDA $KEDA_VERSION has no config/crd/bases/keda.sh_$crd.yaml"
    (cd "$staging/schemas" &&
        DENY_ROOT_ADDITIONAL_PROPERTIES=1 FILENAME_FORMAT='{kind}-{group}-{version}' \
            "$python" "$converter" "$file") >&2 || fail "converting $file failed"
done
# The kafka scaler's parameters, from its struct tags (`keda:"name=topic,order=triggerMetadata;..."`):
# trigger metadata is a free string map in the CRD, so this is what catches a misspelt key.
sed -n 's/.*keda:"name=\([A-Za-z]*\),order=\([A-Za-z;]*\).*/\1 \2/p' \
    "$keda/pkg/scalers/kafka_scaler.go" >"$staging/kafka-scaler-params.txt"
grep -q '^consumerGroup ' "$staging/kafka-scaler-params.txt" ||
    fail "found no kafka scaler parameters in KEDA $KEDA_VERSION pkg/scalers/kafka_scaler.go"

cat >"$staging/VERSIONS" <<EOF
kustomize sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION
kubeconform github.com/yannh/kubeconform@$KUBECONFORM_VERSION
kubernetes k8s.io/kubernetes@$KUBERNETES_VERSION api/openapi-spec/swagger.json
keda github.com/kedacore/keda/v2@$KEDA_VERSION config/crd/bases
EOF
"$staging/kustomize" version >/dev/null 2>&1 || fail "the kustomize built does not run"
"$staging/kubeconform" -v >/dev/null 2>&1 || fail "the kubeconform built does not run"
# Rename into place: a concurrent run never sees half a directory (the loser discards its own).
chmod 755 "$staging"
mv -T "$staging" "$dir" 2>/dev/null || rm -rf "$staging"
echo "$dir"
