//go:build wasip1

// Command go-stock-wasm is the wasip1 reactor around package rules: the
// exports of docs/wasm-abi.md, and nothing else. Build with go-stock/build.sh.
package main

import (
	"unsafe"

	"github.com/edge-prewarm/go-stock/rules"
)

// abiVersion is checked by the host at start-up; bump it on any frame change.
const abiVersion = 2

// Package-level buffers stay reachable, and Go's GC does not move heap
// objects, so their addresses stay valid for the host between calls.
var (
	input  []byte
	output []byte
)

//go:wasmexport abi_version
func abiVersionExport() int32 { return abiVersion }

// input_buffer returns the address of an input buffer of at least n bytes.
//
//go:wasmexport input_buffer
func inputBuffer(n int32) int32 {
	if n < 0 {
		return 0
	}
	if int(n) > cap(input) {
		input = make([]byte, n)
	}
	input = input[:n]
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(input))))
}

// aggregate_batch runs the frame in the first n bytes of the input buffer
// and returns ptr<<32 | len of the output frame. A panic becomes a frame
// error: a trap would poison the instance for every later batch.
//
//go:wasmexport aggregate_batch
func aggregateBatch(n int32) (packed int64) {
	defer func() {
		if r := recover(); r != nil {
			output = rules.FrameError(output[:0], "go-stock panicked")
			packed = pack(output)
		}
	}()
	if n < 0 || int(n) > len(input) {
		output = rules.FrameError(output[:0], "input length out of range")
		return pack(output)
	}
	output = rules.RunBatch(output, input[:n])
	return pack(output)
}

func pack(b []byte) int64 {
	return int64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))<<32 | int64(len(b))
}

func main() {}
