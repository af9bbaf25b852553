// Package rules holds the stock and price rules of edge prewarm (SPEC §2-4).
//
// msgpack.go owns a small MessagePack reader over a byte slice: bounds-checked
// everywhere, never panics, and reads floats only so they can be rejected.
package rules

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
)

var errShort = errors.New("truncated")

// kind is the MessagePack type family of a value.
type kind uint8

const (
	kindNil kind = iota
	kindBool
	kindInt
	kindFloat
	kindStr
	kindBin
	kindArray
	kindMap
	kindExt
)

// reader reads MessagePack values from b starting at off.
type reader struct {
	b   []byte
	off int
}

func (r *reader) byte1() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// uintN reads a big-endian unsigned integer of n = 1, 2, 4 or 8 bytes.
func (r *reader) uintN(n int) (uint64, error) {
	if n > len(r.b)-r.off {
		return 0, errShort
	}
	b := r.b[r.off:]
	r.off += n
	switch n {
	case 1:
		return uint64(b[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(b)), nil
	default:
		return binary.BigEndian.Uint64(b), nil
	}
}

// peek reports the kind of the next value without consuming it.
func (r *reader) peek() (kind, error) {
	if r.off >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.off]
	switch {
	case c <= 0x7f || c >= 0xe0:
		return kindInt, nil
	case c >= 0x80 && c <= 0x8f:
		return kindMap, nil
	case c >= 0x90 && c <= 0x9f:
		return kindArray, nil
	case c >= 0xa0 && c <= 0xbf:
		return kindStr, nil
	}
	switch c {
	case 0xc0:
		return kindNil, nil
	case 0xc2, 0xc3:
		return kindBool, nil
	case 0xc4, 0xc5, 0xc6:
		return kindBin, nil
	case 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return kindExt, nil
	case 0xca, 0xcb:
		return kindFloat, nil
	case 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3:
		return kindInt, nil
	case 0xd9, 0xda, 0xdb:
		return kindStr, nil
	case 0xdc, 0xdd:
		return kindArray, nil
	case 0xde, 0xdf:
		return kindMap, nil
	}
	return 0, errors.New("unknown type byte 0xc1")
}

var (
	errNotInt   = errors.New("not an integer")
	errNotStr   = errors.New("not a string")
	errNotArray = errors.New("not an array")
	errNotMap   = errors.New("not a map")
	errTooBig   = errors.New("integer out of 64-bit range")
)

// readInt reads any MessagePack integer as int64; floats and everything else
// are errNotInt.
func (r *reader) readInt() (int64, error) { return r.intIn(math.MinInt64, math.MaxInt64) }

// intIn reads an integer in lo..hi. It reads every integer form itself,
// without calls: the decoders call it directly for every quantity, price and
// time, and profile-guided inlining only inlines the calls it saw hot, not
// the calls inside what it inlined.
func (r *reader) intIn(lo, hi int64) (int64, error) {
	b, o := r.b, r.off
	if o >= len(b) {
		return 0, errShort
	}
	var v int64
	if c := b[o]; c <= 0x7f || c >= 0xe0 {
		r.off = o + 1
		v = int64(int8(c))
	} else {
		if c < 0xcc || c > 0xd3 {
			return 0, errNotInt
		}
		n := 1 << (c & 3) // 0xcc..0xcf: uint8..uint64; 0xd0..0xd3: int8..int64
		if n > len(b)-o-1 {
			return 0, errShort
		}
		p := b[o+1 : o+1+n]
		r.off = o + 1 + n
		switch {
		case n == 1 && c == 0xcc:
			v = int64(p[0])
		case n == 1:
			v = int64(int8(p[0]))
		case n == 2 && c == 0xcd:
			v = int64(binary.BigEndian.Uint16(p))
		case n == 2:
			v = int64(int16(binary.BigEndian.Uint16(p)))
		case n == 4 && c == 0xce:
			v = int64(binary.BigEndian.Uint32(p))
		case n == 4:
			v = int64(int32(binary.BigEndian.Uint32(p)))
		default:
			v = int64(binary.BigEndian.Uint64(p))
			if c == 0xcf && v < 0 {
				return 0, errTooBig
			}
		}
	}
	if v < lo || v > hi {
		return 0, &rangeError{v, lo, hi}
	}
	return v, nil
}

// rangeError is an integer outside the range of its field.
type rangeError struct{ v, lo, hi int64 }

func (e *rangeError) Error() string {
	return "out of range " + strconv.FormatInt(e.lo, 10) + ".." + strconv.FormatInt(e.hi, 10) + ": " + strconv.FormatInt(e.v, 10)
}

// readLen reads a length-prefixed header whose first byte is c, for str/bin/array/map families.
func (r *reader) lenAfter(c byte, fix byte, fixMask byte, b8, b16, b32 byte) (int, bool, error) {
	var n uint64
	var err error
	switch {
	case fixMask != 0 && c&^fixMask == fix:
		n = uint64(c & fixMask)
	case b8 != 0 && c == b8:
		n, err = r.uintN(1)
	case c == b16:
		n, err = r.uintN(2)
	case c == b32:
		n, err = r.uintN(4)
	default:
		return 0, false, nil
	}
	if err != nil {
		return 0, true, err
	}
	return int(n), true, nil
}

// readStrBytes reads a string's bytes, aliasing b (with b's capacity past
// them). Like intIn, it reads every form itself, and so do readArrayLen and
// readMapLen.
func (r *reader) readStrBytes() ([]byte, error) {
	b, o := r.b, r.off
	if o >= len(b) {
		return nil, errShort
	}
	var n, h int // length, header size
	switch c := b[o]; {
	case c&0xe0 == 0xa0:
		n, h = int(c&0x1f), 1
	case c == 0xd9 && len(b)-o >= 2:
		n, h = int(b[o+1]), 2
	case c == 0xda && len(b)-o >= 3:
		n, h = int(binary.BigEndian.Uint16(b[o+1:])), 3
	case c == 0xdb && len(b)-o >= 5:
		n, h = int(binary.BigEndian.Uint32(b[o+1:])), 5
	case c >= 0xd9 && c <= 0xdb:
		return nil, errShort
	default:
		return nil, errNotStr
	}
	if n > len(b)-o-h {
		return nil, errShort
	}
	r.off = o + h + n
	return b[o+h : o+h+n], nil // capacity left for strCache.get
}

// readArrayLen reads an array header. The length is checked against the
// remaining bytes (each element takes at least one), so no caller allocates
// for elements that cannot be there.
func (r *reader) readArrayLen() (int, error) {
	b, o := r.b, r.off
	if o >= len(b) {
		return 0, errShort
	}
	var n, h int
	switch c := b[o]; {
	case c&0xf0 == 0x90:
		n, h = int(c&0x0f), 1
	case c == 0xdc && len(b)-o >= 3:
		n, h = int(binary.BigEndian.Uint16(b[o+1:])), 3
	case c == 0xdd && len(b)-o >= 5:
		n, h = int(binary.BigEndian.Uint32(b[o+1:])), 5
	case c == 0xdc || c == 0xdd:
		return 0, errShort
	default:
		return 0, errNotArray
	}
	if n > len(b)-o-h {
		return 0, errShort
	}
	r.off = o + h
	return n, nil
}

// readMapLen reads a map header, checked like readArrayLen (two bytes per
// entry at least).
func (r *reader) readMapLen() (int, error) {
	b, o := r.b, r.off
	if o >= len(b) {
		return 0, errShort
	}
	var n, h int
	switch c := b[o]; {
	case c&0xf0 == 0x80:
		n, h = int(c&0x0f), 1
	case c == 0xde && len(b)-o >= 3:
		n, h = int(binary.BigEndian.Uint16(b[o+1:])), 3
	case c == 0xdf && len(b)-o >= 5:
		n, h = int(binary.BigEndian.Uint32(b[o+1:])), 5
	case c == 0xde || c == 0xdf:
		return 0, errShort
	default:
		return 0, errNotMap
	}
	if n > (len(b)-o-h)/2 {
		return 0, errShort
	}
	r.off = o + h
	return n, nil
}

// isNil consumes a nil if one is next.
func (r *reader) isNil() bool {
	if r.off < len(r.b) && r.b[r.off] == 0xc0 {
		r.off++
		return true
	}
	return false
}

const maxDepth = 32

// skip consumes one value of any type, nested up to maxDepth.
func (r *reader) skip(depth int) error {
	if depth > maxDepth {
		return errors.New("nested too deeply")
	}
	k, err := r.peek()
	if err != nil {
		return err
	}
	switch k {
	case kindNil, kindBool:
		r.off++
		return nil
	case kindInt:
		_, err := r.readInt()
		return err
	case kindFloat:
		c, _ := r.byte1()
		n := 4
		if c == 0xcb {
			n = 8
		}
		return r.advance(n)
	case kindStr:
		_, err := r.readStrBytes()
		return err
	case kindBin:
		c, _ := r.byte1()
		n, _, err := r.lenAfter(c, 0, 0, 0xc4, 0xc5, 0xc6)
		if err != nil {
			return err
		}
		return r.advance(n)
	case kindExt:
		c, _ := r.byte1()
		var n int
		switch c {
		case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
			n = 1 << (c - 0xd4)
		default:
			l, _, err := r.lenAfter(c, 0, 0, 0xc7, 0xc8, 0xc9)
			if err != nil {
				return err
			}
			n = l
		}
		return r.advance(n + 1) // the type byte, then the data
	case kindArray:
		n, err := r.readArrayLen()
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case kindMap:
		n, err := r.readMapLen()
		if err != nil {
			return err
		}
		for i := 0; i < 2*n; i++ {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	}
	return errors.New("unknown type")
}

func (r *reader) advance(n int) error {
	if n < 0 || n > len(r.b)-r.off {
		return errShort
	}
	r.off += n
	return nil
}
