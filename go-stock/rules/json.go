// json.go owns the JSON of an aggregate (SPEC §4): written by hand, keys in
// the SPEC's order, no reflection, into a buffer grown once.
//
// It is written for Go's Wasm backend, where a copy of a few bytes through
// copy or append is a call of runtime.memmove and then of V8's memory.copy
// in C, and a 64-bit division by a constant is four multiplications: the
// fixed text goes out in 16-byte moves (two i64 loads and stores each),
// numbers are written in place, and a string is checked eight bytes at a
// time.
package rules

import (
	"math/bits"
	"slices"
	"unicode/utf8"
)

// lit is a piece of fixed JSON text of at most 32 bytes. put writes all 32
// bytes and advances by n, so the buffer needs litSlack bytes of room past
// the end of what is written.
type lit struct {
	lo, hi [16]byte
	n      int
}

const litSlack = 32

func newLit(s string) lit {
	if len(s) > 32 {
		panic("rules: JSON literal over 32 bytes: " + s)
	}
	var l lit
	copy(l.lo[:], s)
	copy(l.hi[:], s[min(16, len(s)):])
	l.n = len(s)
	return l
}

// put writes l at b[n:] and returns the end. The arrays are copied from
// fields, not from slices (which may overlap), so that each copy compiles
// to two i64 loads and stores instead of a call of memmove.
func (l *lit) put(b []byte, n int) int {
	*(*[16]byte)(b[n:]) = l.lo
	if l.n > 16 {
		*(*[16]byte)(b[n+16:]) = l.hi
	}
	return n + l.n
}

// The fixed text of an aggregate, with the quotes of the strings around it.
var (
	litSKU        = newLit(`{"sku":`)
	litRegion     = newLit(`,"region":`)
	litAvailable  = newLit(`,"stock":{"available":`)
	litMaxOrder   = newLit(`,"maxOrderQty":`)
	litAmount     = newLit(`},"price":{"amount":`)
	litList       = newLit(`,"list":`)
	litCurrency   = newLit(`,"currency":`)
	litPromoID    = newLit(`,"promoId":`)
	litNext       = newLit(`},"next":`)
	litNextAt     = newLit(`{"at":`)
	litNextAmount = newLit(`,"amount":`)
	litNull       = newLit(`null`)
	litSource     = newLit(`,"source":`)
	litEdge       = newLit(`,"source":"edge","computedAt":`)
	litRegional   = newLit(`,"source":"regional"`)
	litComputedAt = newLit(`,"computedAt":`)
	litValidUntil = newLit(`,"validUntil":`)
	litStatus     = newLit(`,"status":`)
	// The statuses, with their key.
	litInStock    = newLit(`,"status":"` + InStock + `"`)
	litLowStock   = newLit(`,"status":"` + LowStock + `"`)
	litOutOfStock = newLit(`,"status":"` + OutOfStock + `"`)
)

// jsonFixed bounds the bytes of an aggregate's JSON other than its strings
// and their quotes: the fixed text (at most 223 bytes, nulls included), eight
// numbers of at most 20 bytes, and the slack of the last literal.
const jsonFixed = 256 + 8*20 + litSlack

// AppendJSON appends the aggregate as SPEC §4 JSON.
func (a *Aggregate) AppendJSON(b []byte) []byte {
	var t times
	return a.appendJSON(b, &t)
}

// times caches the decimal forms of the times of the aggregates a Decoder
// writes: in a batch they share their computedAt, and mostly their
// validUntil and next change too.
type times struct{ computedAt, validUntil, nextAt stamp }

// stamp is the decimal form of the time v, of n ≤ 16 digits (n 0: none).
type stamp struct {
	v int64
	n int
	d [16]byte
}

// put writes v at b[n:] (16 bytes of room) and returns the end.
func (s *stamp) put(b []byte, n int, v int64) int {
	if v != s.v || s.n == 0 {
		if v < 0 || v >= 1e16 {
			return putInt(b, n, v)
		}
		s.v, s.n = v, putInt(s.d[:], 0, v)
	}
	*(*[16]byte)(b[n:]) = s.d // from a field: two i64 moves, see lit.put
	return n + s.n
}

func (a *Aggregate) appendJSON(b []byte, t *times) []byte {
	strs := len(a.SKU) + len(a.Region) + len(a.Stock.Status) + len(a.Price.Currency) +
		len(a.Price.PromoID) + len(a.Next.PromoID) + len(a.Source)
	start := len(b)
	b = slices.Grow(b, jsonFixed+7*2+maxEscaped*strs)
	b = b[:cap(b)]
	n := litSKU.put(b, start)
	n = putString(b, n, a.SKU)
	n = litRegion.put(b, n)
	n = putString(b, n, a.Region)
	n = litAvailable.put(b, n)
	n = putInt(b, n, a.Stock.Available)
	switch a.Stock.Status {
	case InStock:
		n = litInStock.put(b, n)
	case LowStock:
		n = litLowStock.put(b, n)
	case OutOfStock:
		n = litOutOfStock.put(b, n)
	default: // not one of ComputeStock's
		n = litStatus.put(b, n)
		n = putString(b, n, a.Stock.Status)
	}
	n = litMaxOrder.put(b, n)
	n = putInt(b, n, a.Stock.MaxOrderQty)
	n = litAmount.put(b, n)
	n = putInt(b, n, a.Price.Amount)
	n = litList.put(b, n)
	n = putInt(b, n, a.Price.List)
	n = litCurrency.put(b, n)
	if c := a.Price.Currency; len(c) == 3 && c[0]-'A' < 26 && c[1]-'A' < 26 && c[2]-'A' < 26 { // as decoded
		b[n], b[n+1], b[n+2], b[n+3], b[n+4] = '"', c[0], c[1], c[2], '"'
		n += 5
	} else {
		n = putString(b, n, c)
	}
	n = litPromoID.put(b, n)
	n = putPromo(b, n, a.Price.HasPromo, a.Price.PromoID)
	n = litNext.put(b, n)
	if !a.HasNext {
		n = litNull.put(b, n)
	} else {
		n = litNextAt.put(b, n)
		n = t.nextAt.put(b, n, a.Next.At)
		n = litNextAmount.put(b, n)
		n = putInt(b, n, a.Next.Amount)
		n = litPromoID.put(b, n)
		n = putPromo(b, n, a.Next.HasPromo, a.Next.PromoID)
		b[n] = '}'
		n++
	}
	switch a.Source {
	case "edge":
		n = litEdge.put(b, n)
	case "regional":
		n = litRegional.put(b, n)
		n = litComputedAt.put(b, n)
	default:
		n = litSource.put(b, n)
		n = putString(b, n, a.Source)
		n = litComputedAt.put(b, n)
	}
	n = t.computedAt.put(b, n, a.ComputedAt)
	n = litValidUntil.put(b, n)
	n = t.validUntil.put(b, n, a.ValidUntil)
	b[n] = '}'
	return b[:n+1]
}

func putPromo(b []byte, n int, has bool, id string) int {
	if !has {
		return litNull.put(b, n)
	}
	return putString(b, n, id)
}

// smalls holds the two digits of 0..99.
const smalls = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// pow10 holds 10^0..10^19.
var pow10 = [20]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// putInt writes v in decimal at b[n:], as strconv.AppendInt does, and
// returns the end; b has 20 bytes of room.
func putInt(b []byte, n int, v int64) int {
	u := uint64(v)
	if v < 0 {
		b[n] = '-'
		n++
		u = -u
	}
	if u < 10 {
		b[n] = byte('0' + u)
		return n + 1
	}
	// The number of digits, from the bit length (1233/4096 ≈ log10 2).
	k := bits.Len64(u) * 1233 >> 12
	if u >= pow10[k] {
		k++
	}
	i := n + k
	for u >= 1<<32 { // two digits at a time in 64 bits, until 32 bits will do
		q := u / 100
		d := (u - q*100) * 2
		i -= 2
		b[i], b[i+1] = smalls[d], smalls[d+1]
		u = q
	}
	w := uint32(u)
	for w >= 100 {
		q := w / 100
		d := (w - q*100) * 2
		i -= 2
		b[i], b[i+1] = smalls[d], smalls[d+1]
		w = q
	}
	if w >= 10 {
		b[i-2], b[i-1] = smalls[w*2], smalls[w*2+1]
	} else {
		b[i-1] = byte('0' + w)
	}
	return n + k
}

const hex = "0123456789abcdef"

// maxEscaped is the most bytes one byte of a string becomes in JSON (\u00XX).
const maxEscaped = 6

// putString writes s as a JSON string at b[n:] and returns the end; b has
// 2 + maxEscaped*len(s) bytes of room. Control characters are escaped;
// invalid UTF-8 becomes U+FFFD, as encoding/json does.
func putString(b []byte, n int, s string) int {
	b[n] = '"'
	n++
	if plain(s) {
		n += copy(b[n:], s)
		b[n] = '"'
		return n + 1
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b[n], b[n+1] = '\\', c
				n += 2
			case c == '\n':
				b[n], b[n+1] = '\\', 'n'
				n += 2
			case c == '\r':
				b[n], b[n+1] = '\\', 'r'
				n += 2
			case c == '\t':
				b[n], b[n+1] = '\\', 't'
				n += 2
			case c < 0x20:
				b[n], b[n+1], b[n+2], b[n+3], b[n+4], b[n+5] = '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf]
				n += 6
			default:
				b[n] = c
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += copy(b[n:], "\ufffd")
		} else {
			n += copy(b[n:], s[i:i+size])
		}
		i += size
	}
	b[n] = '"'
	return n + 1
}

// appendString appends s as a JSON string (putString on a grown b).
func appendString(b []byte, s string) []byte {
	start := len(b)
	b = slices.Grow(b, 2+maxEscaped*len(s))
	return b[:putString(b[:cap(b)], start, s)]
}

// plain reports whether s is printable ASCII without quotes or backslashes:
// a JSON string as it is (ids, regions, currencies nearly always are). It
// tests eight bytes at a time: a loop turn per byte cost more than the
// copy in Wasm.
func plain(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if !plain8(load8(s, i)) {
			return false
		}
	}
	if i < len(s) && len(s) >= 8 {
		return plain8(load8(s, len(s)-8)) // the last 8 bytes, overlapping some tested
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// load8 is s[i:i+8] as a little-endian uint64.
func load8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// plain8 is plain for the eight bytes of x. A byte ≥ 0x80, < 0x20, '"' or
// '\\' sets its high bit in one of the terms (a byte's borrow can only set
// bits above a byte that does too).
func plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, bs := x^(ones*'"'), x^(ones*'\\')
	return (x|(x-ones*0x20)|(q-ones)&^q|(bs-ones)&^bs)&highs == 0
}
