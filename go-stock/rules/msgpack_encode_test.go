package rules

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"testing"
)

// encodeMsgpack is a test-only MessagePack encoder for values decoded with
// json.Decoder.UseNumber: integers stay integers, 1.5 becomes a float64.
// Map keys are written in sorted order so encodings are deterministic.
// Strings, arrays and maps get their widest headers (str32, array32, map32),
// so that tests exercise more than the forms the fast paths read.
func encodeMsgpack(t testing.TB, v any) []byte { return encodeWith(t, v, false) }

// encodeCompact encodes as msgpackr does for the records the feeds write:
// fixstr/str8.., fixarray, map16, the smallest unsigned integer. Benchmarks
// use it, as it is what the edge Redis holds.
func encodeCompact(t testing.TB, v any) []byte { return encodeWith(t, v, true) }

// ordered is a map written in its own key order, as msgpackr writes an
// object: key, value, key, value...
type ordered []any

func encodeWith(t testing.TB, v any, compact bool) []byte {
	t.Helper()
	var b []byte
	var enc func(v any)
	enc = func(v any) {
		switch x := v.(type) {
		case nil:
			b = append(b, 0xc0)
		case bool:
			if x {
				b = append(b, 0xc3)
			} else {
				b = append(b, 0xc2)
			}
		case json.Number:
			if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				b = appendInt(b, i)
				return
			}
			f, err := x.Float64()
			if err != nil {
				t.Fatalf("number %q: %v", x, err)
			}
			b = append(b, 0xcb)
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(f))
		case float64:
			b = append(b, 0xcb)
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(x))
		case int64:
			if compact && x > math.MaxUint32 {
				b = binary.BigEndian.AppendUint64(append(b, 0xcf), uint64(x))
				return
			}
			b = appendInt(b, x)
		case int:
			b = appendInt(b, int64(x))
		case string:
			if compact && len(x) < 32 {
				b = append(append(b, 0xa0|byte(len(x))), x...)
				return
			}
			b = appendStr(b, x)
		case []any:
			if compact && len(x) < 16 {
				b = append(b, 0x90|byte(len(x)))
			} else {
				b = append(b, 0xdd)
				b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
			}
			for _, e := range x {
				enc(e)
			}
		case ordered:
			b = append(b, 0xde)
			b = binary.BigEndian.AppendUint16(b, uint16(len(x)/2))
			for i := 0; i < len(x); i += 2 {
				b = appendStr(b, x[i].(string))
				enc(x[i+1])
			}
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if compact {
				b = append(b, 0xde)
				b = binary.BigEndian.AppendUint16(b, uint16(len(x)))
			} else {
				b = append(b, 0xdf)
				b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
			}
			for _, k := range keys {
				b = appendStr(b, k)
				enc(x[k])
			}
		default:
			t.Fatalf("cannot encode %T", v)
		}
	}
	enc(v)
	return b
}

func appendInt(b []byte, i int64) []byte {
	switch {
	case i >= 0 && i <= 0x7f:
		return append(b, byte(i))
	case i >= -32 && i < 0:
		return append(b, byte(i))
	case i >= 0 && i <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(i))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(i))
	}
}

func appendStr(b []byte, s string) []byte {
	b = append(b, 0xdb)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
