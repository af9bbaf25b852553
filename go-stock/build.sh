#!/usr/bin/env bash
# Builds the rules as a wasip1 reactor: ./build.sh [OUTPUT] (default ../build/go-stock.wasm,
# relative to this directory). Needs Go >= 1.24 (//go:wasmexport). go build picks up
# cmd/go-stock-wasm/default.pgo (profile-guided optimisation); ./pgo.sh refreshes it.
# Beside OUTPUT it writes OUTPUT's rules version (SPEC §9: the first 12 hex digits of the
# SHA-256 of the module's bytes) to go-stock-rules-version.txt, which the worker imports
# (worker/rules/version.ts): workerd imports the module compiled, so the worker cannot hash it.
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-../build/go-stock.wasm}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
mkdir -p "$(dirname "$out")"
GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags="-s -w" -o "$out" ./cmd/go-stock-wasm
version="$(sha256sum "$out" | cut -c1-12)"
printf '%s' "$version" > "$(dirname "$out")/go-stock-rules-version.txt.tmp"
mv "$(dirname "$out")/go-stock-rules-version.txt.tmp" "$(dirname "$out")/go-stock-rules-version.txt"
