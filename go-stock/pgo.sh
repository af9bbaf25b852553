#!/usr/bin/env bash
# Refreshes cmd/go-stock-wasm/default.pgo, the CPU profile `go build` uses for
# profile-guided optimisation of the Wasm module (it inlines the readers the
# decoders call: ~4 % less time per SKU in V8; the decoders are go:noinline so
# that it keeps doing so). Run it after changing the hot path of package
# rules, then rebuild (npm run build:wasm) and commit the profile.
set -euo pipefail
cd "$(dirname "$0")"
go test ./rules -run '^$' -bench '^BenchmarkBatch1000$' -benchtime 5s -cpuprofile cmd/go-stock-wasm/default.pgo -o /tmp/go-stock-rules.test
rm -f /tmp/go-stock-rules.test
