#!/usr/bin/env bash
# Refreshes cmd/go-stock-wasm/default.pgo, the CPU profile `go build` uses for
# profile-guided optimisation of the Wasm module (it inlines the decoder's hot
# calls: ~8-10 % less time per SKU in V8). Run it after changing the hot path
# of package rules, then rebuild (npm run build:wasm) and commit the profile.
set -euo pipefail
cd "$(dirname "$0")"
go test ./rules -run '^$' -bench '^BenchmarkBatch1000$' -benchtime 5s -cpuprofile cmd/go-stock-wasm/default.pgo -o /tmp/go-stock-rules.test
rm -f /tmp/go-stock-rules.test
