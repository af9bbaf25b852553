package rules

import (
	"math"
	"math/rand"
	"strconv"
	"strings"
	"testing"
)

func TestPutIntWritesWhatStrconvWrites(t *testing.T) {
	check := func(v int64) {
		t.Helper()
		b := make([]byte, 3+20)
		n := putInt(b, 3, v)
		if got, want := string(b[3:n]), strconv.FormatInt(v, 10); got != want {
			t.Fatalf("putInt(%d): got %q; want %q", v, got, want)
		}
	}
	for _, v := range []int64{0, 9, 10, 1<<32 - 1, 1 << 32, MaxTime, math.MaxInt64, math.MinInt64} {
		check(v)
	}
	for p := int64(1); p <= 1e18; p *= 10 { // every digit count, at its edges
		for _, v := range []int64{p - 1, p, p + 1} {
			check(v)
			check(-v)
		}
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 100_000; i++ {
		v := rng.Int63() >> rng.Intn(63)
		check(v)
		check(-v)
	}
}

func TestPlainMatchesAByteByByteCheck(t *testing.T) {
	slow := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
				return false
			}
		}
		return true
	}
	special := []byte{0, 0x1f, 0x20, '"', '\\', 0x7e, 0x7f, 0x80, 0xff}
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 200_000; i++ {
		b := make([]byte, rng.Intn(30))
		for j := range b {
			b[j] = byte(0x20 + rng.Intn(0x5f))
			if rng.Intn(10) == 0 {
				b[j] = special[rng.Intn(len(special))]
			}
		}
		if got, want := plain(string(b)), slow(string(b)); got != want {
			t.Fatalf("plain(%q): got %v; want %v", b, got, want)
		}
	}
}

func TestAppendJSONFitsTheLongestAggregate(t *testing.T) {
	a := Aggregate{Stock: Stock{Available: math.MinInt64, Status: OutOfStock, MaxOrderQty: math.MinInt64},
		Price: Price{Amount: math.MinInt64, List: math.MinInt64}, HasNext: true,
		Next: Next{At: math.MinInt64, Amount: math.MinInt64}, Source: "regional", ComputedAt: math.MinInt64, ValidUntil: math.MinInt64}
	for _, capacity := range []int{0, 1, 100, 400} {
		b := a.AppendJSON(make([]byte, 0, capacity))
		if !strings.HasSuffix(string(b), `"validUntil":-9223372036854775808}`) {
			t.Fatalf("cap %d: got %s", capacity, b)
		}
	}
}
