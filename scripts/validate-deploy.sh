#!/usr/bin/env bash
# Validates the deployment files without a cluster, a Docker daemon or Prometheus (see
# deploy/validate/main.go for what is checked and with which upstream library):
#   deploy/k8s/*.yaml           kustomize build (kustomize's library); strict decoding into
#                               k8s.io/api types; KEDA and Prometheus
#                               Operator resources against their CRD schemas (API-server
#                               validation + pruning); wiring between the objects
#   deploy/prometheus/*.yml     Prometheus' rule-file parser (as `promtool check rules`)
#   deploy/grafana/             dashboard strictly against Grafana's schema (Foundation SDK);
#                               every PromQL query parsed
#   deploy/metrics.txt          the only metric and label names the queries may use
#   docker-compose.yml          compose-go, the loader behind `docker compose config`
#   Dockerfile                  BuildKit's parser and build-check linter
#   .github/workflows/*.yml     actionlint (a separate binary: its YAML library conflicts with
#                               the validator's), plus what the validator checks (ci.yml runs
#                               .ci/run; release.yml: tag -> .ci/run -> image with SBOM and
#                               provenance -> staging -> production behind its environment)
#   deploy/terraform/           HashiCorp's HCL parser and formatter (terraform fmt's), the
#                               variables' validations on their defaults, and the contract with
#                               src/ and deploy/k8s (topics, partitions, replication, ACLs,
#                               ports, environment twins; the workload overlay rendered with
#                               kustomize's library). No terraform binary, provider or cloud.
# then runs the validator's own tests, which break each file on purpose and expect a failure,
# and the alert rules' behaviour tests (synthetic series through Prometheus' PromQL engine:
# which alerts fire for a healthy pipeline and for each failure).
#
# Needs Go (>= the version in deploy/validate/go.mod; an older go fetches the right toolchain
# from the Go module proxy). Modules, build cache and the built validator live under
# ~/.cache/kafka-pipeline, so a warm run takes seconds.
#
# scripts/validate-deploy.sh --live [URL]   (default http://127.0.0.1:9898/metrics)
#   instead scrapes a running pipeline 8 times, 5 s apart, and checks the real exposition
#   against deploy/metrics.txt and evaluates every dashboard query and alert on it with
#   Prometheus' engine (deploy/validate/live_test.go). Run it while the pipeline has traffic.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
live=
if [[ ${1:-} == --live ]]; then live=${2:-http://127.0.0.1:9898/metrics}; fi

# Upstream modules whose files the validator reads: CRD schemas and the Kafka scaler's
# parameter names. Bump together with the versions you deploy.
KEDA_VERSION=v2.21.0
PROMETHEUS_OPERATOR_VERSION=v0.85.0
ACTIONLINT_VERSION=v1.7.12

cache=${KAFKA_PIPELINE_CACHE:-$HOME/.cache/kafka-pipeline}
export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOFLAGS="-modcacherw -buildvcs=false"
command -v go >/dev/null || { echo "validate-deploy: go is not installed (.ci/run installs golang-go)" >&2; exit 1; }

# Go older than 1.21 (Debian bookworm's golang-go is 1.19) cannot switch toolchains itself:
# fetch the one go.mod asks for, which the Go module proxy serves as the module
# golang.org/toolchain, and put it first on PATH.
want=$(sed -n 's/^go \([0-9.]*\)$/\1/p' deploy/validate/go.mod)
have=$(go env GOVERSION | sed 's/^go//')
if [[ $(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1) != "$want" ]]; then
  case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
  echo "go $have is older than $want: fetching the go$want toolchain module"
  dir=$(cd /tmp && GOTOOLCHAIN=local go mod download -json "golang.org/toolchain@v0.0.1-go$want.linux-$arch" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  # Module zips carry no file modes (cmd/go sets them itself when it switches toolchains).
  chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/*
  export PATH=$dir/bin:$PATH GOTOOLCHAIN=local
  go version
fi

module_dir() {
  go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
KEDA_MODULE_DIR=$(module_dir github.com/kedacore/keda/v2 "$KEDA_VERSION")
PROMETHEUS_OPERATOR_MODULE_DIR=$(module_dir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION")
export KEDA_MODULE_DIR PROMETHEUS_OPERATOR_MODULE_DIR
[[ -d $KEDA_MODULE_DIR && -d $PROMETHEUS_OPERATOR_MODULE_DIR ]] || {
  echo "validate-deploy: could not download the KEDA / Prometheus Operator modules" >&2; exit 1; }

cd deploy/validate
if [[ -n $live ]]; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  files=()
  for i in 1 2 3 4 5 6 7 8; do
    curl -fsS "$live" -o "$dir/scrape-$i.prom"
    files+=("$dir/scrape-$i.prom")
    [[ $i == 8 ]] || sleep 5
  done
  KAFKA_PIPELINE_EXPOSITIONS=$(IFS=,; echo "${files[*]}") KAFKA_PIPELINE_SCRAPE_INTERVAL=5s \
    go test -count=1 -v -run TestLiveExposition .
  exit
fi

# Build the validator once per source version.
hash=$( (go version; cat go.mod go.sum ./*.go) | sha256sum | cut -c1-16)
bin=$cache/validate-deploy/$hash/validate-deploy
if [[ ! -x $bin ]]; then
  echo "building the validator ($bin)"
  go build -o "$bin.tmp" . && mv "$bin.tmp" "$bin"
fi

"$bin" -repo "$root" -keda "$KEDA_MODULE_DIR" -prometheus-operator "$PROMETHEUS_OPERATOR_MODULE_DIR" \
  | grep -v '^ok ' || true
status=${PIPESTATUS[0]}
[[ $status == 0 ]] || { echo "validate-deploy: FAILED (run $bin -repo . ... for every check)" >&2; exit "$status"; }

echo "validator self-test (each check must catch a broken file) and alert behaviour tests:"
go test -count=1 ./...
cd "$root"

# The workflow: actionlint, built once per version. The broken workflow proves it still fails.
actionlint=$cache/validate-deploy/actionlint-$ACTIONLINT_VERSION/actionlint
if [[ ! -x $actionlint ]]; then
  GOBIN=$(dirname "$actionlint") go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi
"$actionlint" -shellcheck= -pyflakes= .github/workflows/ci.yml .github/workflows/release.yml
if printf 'on: push\njobs:\n  x:\n    runs_on: ubuntu-latest\n    steps: [{run: echo}]\n' \
  | "$actionlint" -shellcheck= -pyflakes= - >/dev/null; then
  echo "validate-deploy: actionlint accepted a broken workflow" >&2
  exit 1
fi
echo "actionlint $ACTIONLINT_VERSION: .github/workflows/ci.yml and release.yml clean; a broken workflow is rejected"
