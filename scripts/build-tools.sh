#!/usr/bin/env bash
# Builds the real components the tests and the demo run, into .tools/bin/:
#   otelcol (our distribution, from otel-collector/builder-config.yaml), prometheus, promtool,
#   alertmanager, amtool, thanos (receive, query, rule: the distributed deployment in thanos/).
# Pins live in tools/versions.env and the builder manifest. Each binary is keyed on its pin
# (a stamp file under .tools/stamps/), so a second run with the same pins does nothing, and a
# changed pin rebuilds just that tool.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
bin="$tools/bin"
stamps="$tools/stamps"
work="$tools/build"
mkdir -p "$bin" "$stamps" "$work"

# shellcheck source=../tools/versions.env
source "$root/tools/versions.env"

started=$SECONDS
say() { printf '[tools %4ds] %s\n' "$((SECONDS - started))" "$*"; }
die() { printf 'make tools: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is required to build the collector, Prometheus and Alertmanager, and 'go' is not on PATH. Install Go >= 1.26 (https://go.dev/doc/install, or your distribution's golang package) and run 'make tools' again."
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
[ "${go_minor:-0}" -ge 26 ] || die "Go >= 1.26 is required (found $(go env GOVERSION)). The collector builder ${OCB_VERSION} and Prometheus ${PROMETHEUS_VERSION} need it."

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

# quietly LOG CMD...: run CMD with its chatter in LOG; show the LOG only when CMD fails.
quietly() {
  local log=$1; shift
  "$@" >"$log" 2>&1 || { cat "$log" >&2; return 1; }
}

key_of() { printf '%s' "$*" | sha256sum | cut -c1-16; }

# up_to_date NAME KEY BINARIES...: true when the stamp matches and every binary exists.
up_to_date() {
  local name=$1 key=$2; shift 2
  [ "$(cat "$stamps/$name" 2>/dev/null)" = "$key" ] || return 1
  local b; for b in "$@"; do [ -x "$bin/$b" ] || return 1; done
}

build_otelcol() {
  local manifest="$root/otel-collector/builder-config.yaml"
  # Keyed on the manifest and on our own components' sources (otel-collector/*/, issue 13).
  local key; key=$(key_of "$OCB_VERSION" "$(cat "$manifest" "$root"/otel-collector/*/go.mod "$root"/otel-collector/*/*.go 2>/dev/null)")
  if up_to_date otelcol "$key" otelcol; then say "otelcol: up to date (builder $OCB_VERSION, manifest $key)"; return; fi
  local t=$SECONDS
  say "otelcol: installing the collector builder $OCB_VERSION"
  GOBIN="$work/gobin" go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
  say "otelcol: building our distribution from otel-collector/builder-config.yaml (cold: several minutes)"
  rm -rf "$work/otelcol"; mkdir -p "$work/otelcol"
  (cd "$work/otelcol" && "$work/gobin/builder" --config="$manifest")
  install -m 0755 "$work/otelcol/_build/otelcol" "$bin/otelcol"
  echo "$key" > "$stamps/otelcol"
  say "otelcol: built in $((SECONDS - t))s"
}

# Stamp the real version into a binary (go build leaves it empty otherwise).
version_ldflags() {
  local v=$1 pkg=github.com/prometheus/common/version
  printf -- '-X %s.Version=%s -X %s.Revision=%s -X %s.Branch=release -X %s.BuildUser=budgetwatch' \
    "$pkg" "$v" "$pkg" "$v" "$pkg" "$pkg"
}

build_prometheus() {
  # Go module tag v0.3XX.Y is Prometheus 3.XX.Y.
  local release; release=$(echo "$PROMETHEUS_VERSION" | sed -E 's/^v0\.3([0-9]{2})\.([0-9]+)$/3.\1.\2/; s/^3\.0([0-9])/3.\1/')
  local key; key=$(key_of "$PROMETHEUS_VERSION" remove_all_sd "$release")
  if up_to_date prometheus "$key" prometheus promtool; then say "prometheus, promtool: up to date ($PROMETHEUS_VERSION)"; return; fi
  local t=$SECONDS dir="$work/prometheus"
  say "prometheus, promtool: building $PROMETHEUS_VERSION (cold: several minutes)"
  rm -rf "$dir"; mkdir -p "$dir"
  # A wrapper module: Prometheus's own go.mod may carry replace/exclude lines that make a
  # plain `go install pkg@version` refuse to build.
  (cd "$dir" && go mod init budgetwatch.local/prometheus-build >/dev/null 2>&1 \
     && quietly "$dir/go-get.log" go get "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" \
               "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" \
     && say "prometheus, promtool: modules ready, compiling" \
     && go build -tags remove_all_sd -ldflags "$(version_ldflags "$release")" -o "$bin/prometheus" github.com/prometheus/prometheus/cmd/prometheus \
     && go build -tags remove_all_sd -ldflags "$(version_ldflags "$release")" -o "$bin/promtool" github.com/prometheus/prometheus/cmd/promtool)
  echo "$key" > "$stamps/prometheus"
  say "prometheus, promtool: built in $((SECONDS - t))s"
}

build_alertmanager() {
  local key; key=$(key_of "$ALERTMANAGER_VERSION" versioned)
  if up_to_date alertmanager "$key" alertmanager amtool; then say "alertmanager, amtool: up to date ($ALERTMANAGER_VERSION)"; return; fi
  local t=$SECONDS
  say "alertmanager, amtool: building $ALERTMANAGER_VERSION"
  GOBIN="$bin" go install -ldflags "$(version_ldflags "${ALERTMANAGER_VERSION#v}")" "github.com/prometheus/alertmanager/cmd/alertmanager@$ALERTMANAGER_VERSION" \
                          "github.com/prometheus/alertmanager/cmd/amtool@$ALERTMANAGER_VERSION"
  echo "$key" > "$stamps/alertmanager"
  say "alertmanager, amtool: built in $((SECONDS - t))s"
}

build_dashcheck() {
  local dir="$root/tools/dashcheck"
  local key; key=$(key_of "$(cat "$dir/go.mod" "$dir/go.sum" "$dir/main.go")")
  if up_to_date dashcheck "$key" dashcheck; then say "dashcheck: up to date ($key)"; return; fi
  local t=$SECONDS
  say "dashcheck: building the strict dashboard schema check (grafana-foundation-sdk/go)"
  (cd "$dir" && go build -o "$bin/dashcheck" .)
  echo "$key" > "$stamps/dashcheck"
  say "dashcheck: built in $((SECONDS - t))s"
}

build_thanos() {
  # Thanos's go.mod has replace directives, so `go install ...@version` refuses it: it builds as
  # the main module, from its directory in the module cache, with the Go version its go.mod
  # asks for (fetched through the module proxy by GOTOOLCHAIN). The tags are the project's own
  # (.promu.yml): without `slicelabels` the binary builds but `receive` panics on the first
  # gRPC call from `query`.
  local key; key=$(key_of "$THANOS_VERSION" "$THANOS_GO" netgo,slicelabels versioned trimpath)
  if up_to_date thanos "$key" thanos; then say "thanos: up to date ($THANOS_VERSION)"; return; fi
  local t=$SECONDS dir="$work/thanos"
  say "thanos: building $THANOS_VERSION with $THANOS_GO (cold: about 5 minutes; warm Go caches: under 2)"
  local mod; mod=$(GOTOOLCHAIN=$THANOS_GO go mod download -json "github.com/thanos-io/thanos@$THANOS_VERSION" \
                   | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  [ -n "$mod" ] && [ -f "$mod/go.mod" ] || die "thanos: could not download github.com/thanos-io/thanos@$THANOS_VERSION"
  rm -rf "$dir"; cp -r "$mod" "$dir"; chmod -R u+w "$dir"
  say "thanos: module ready, downloading the modules ./cmd/thanos needs"
  (cd "$dir" && GOTOOLCHAIN=$THANOS_GO quietly "$work/thanos-deps.log" go list -deps -tags netgo,slicelabels ./cmd/thanos)
  say "thanos: compiling ./cmd/thanos"
  # -trimpath: the build cache keys do not depend on where the checkout is (CI clones anew).
  (cd "$dir" && GOTOOLCHAIN=$THANOS_GO go build -trimpath -tags netgo,slicelabels \
     -ldflags "$(version_ldflags "${THANOS_VERSION#v}")" -o "$bin/thanos" ./cmd/thanos)
  rm -rf "$dir"
  echo "$key" > "$stamps/thanos"
  say "thanos: built in $((SECONDS - t))s"
}

only=${1:-all}
case "$only" in
  all) build_alertmanager; build_prometheus; build_otelcol; build_dashcheck; build_thanos ;;
  otelcol) build_otelcol ;;
  prometheus) build_prometheus ;;
  alertmanager) build_alertmanager ;;
  thanos) build_thanos ;;
  *) die "unknown tool '$only' (expected otelcol, prometheus, alertmanager, thanos or all)" ;;
esac
say "done: $(cd "$bin" && ls | tr '\n' ' ')"
