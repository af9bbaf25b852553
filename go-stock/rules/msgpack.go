// Package rules holds the stock and price rules of edge prewarm (SPEC §2-4).
//
// msgpack.go owns a small MessagePack reader over a byte slice: bounds-checked
// everywhere, never panics, and reads floats only so they can be rejected.
package rules

import (
	"encoding/binary"
	"errors"
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
	b       []byte
	off     int
	strings *strCache // strings to reuse; nil: none
	arena   *arena    // backs decoded slices; nil: fresh allocations
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
// are errNotInt. Positive fixints are read inline (Go calls cost much more in
// Wasm than natively); the rest by readIntSlow.
func (r *reader) readInt() (int64, error) {
	if o := r.off; o < len(r.b) && r.b[o] <= 0x7f {
		r.off++
		return int64(r.b[o]), nil
	}
	return r.readIntSlow()
}

func (r *reader) readIntSlow() (int64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	}
	switch c {
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err := r.uintN(1 << (c - 0xcc))
		if err != nil {
			return 0, err
		}
		if v > 1<<63-1 {
			return 0, errTooBig
		}
		return int64(v), nil
	case 0xd0:
		v, err := r.uintN(1)
		return int64(int8(v)), err
	case 0xd1:
		v, err := r.uintN(2)
		return int64(int16(v)), err
	case 0xd2:
		v, err := r.uintN(4)
		return int64(int32(v)), err
	case 0xd3:
		v, err := r.uintN(8)
		return int64(v), err
	}
	r.off--
	return 0, errNotInt
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

// readStrBytes reads a string's bytes, aliasing b. Fixstrs (keys, ids,
// regions: nearly every string of a record) are read inline.
func (r *reader) readStrBytes() ([]byte, error) {
	if o := r.off; o < len(r.b) {
		if c := r.b[o]; c&0xe0 == 0xa0 {
			if end := o + 1 + int(c&0x1f); end <= len(r.b) {
				r.off = end
				return r.b[o+1 : end], nil
			}
		}
	}
	return r.readStrBytesSlow()
}

func (r *reader) readStrBytesSlow() ([]byte, error) {
	c, err := r.byte1()
	if err != nil {
		return nil, err
	}
	n, ok, err := r.lenAfter(c, 0xa0, 0x1f, 0xd9, 0xda, 0xdb)
	if err != nil {
		return nil, err
	}
	if !ok {
		r.off--
		return nil, errNotStr
	}
	if n > len(r.b)-r.off {
		return nil, errShort
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

// readArrayLen reads an array header. The length is checked against the
// remaining bytes (each element takes at least one), so no caller allocates
// for elements that cannot be there. Fixarrays are read inline.
func (r *reader) readArrayLen() (int, error) {
	if o := r.off; o < len(r.b) {
		if c := r.b[o]; c&0xf0 == 0x90 {
			if n := int(c & 0x0f); n <= len(r.b)-o-1 {
				r.off++
				return n, nil
			}
		}
	}
	return r.readArrayLenSlow()
}

func (r *reader) readArrayLenSlow() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	n, ok, err := r.lenAfter(c, 0x90, 0x0f, 0, 0xdc, 0xdd)
	if err != nil {
		return 0, err
	}
	if !ok {
		r.off--
		return 0, errNotArray
	}
	if n > len(r.b)-r.off {
		return 0, errShort
	}
	return n, nil
}

// readMapLen reads a map header (checked like readArrayLen: two bytes per
// entry at least). Fixmaps and map16s (msgpackr writes every object as a
// map16) are read inline.
func (r *reader) readMapLen() (int, error) {
	if o := r.off; o < len(r.b) {
		switch c := r.b[o]; {
		case c&0xf0 == 0x80:
			if n := int(c & 0x0f); n <= (len(r.b)-o-1)/2 {
				r.off++
				return n, nil
			}
		case c == 0xde && len(r.b)-o >= 3:
			if n := int(r.b[o+1])<<8 | int(r.b[o+2]); n <= (len(r.b)-o-3)/2 {
				r.off += 3
				return n, nil
			}
		}
	}
	return r.readMapLenSlow()
}

func (r *reader) readMapLenSlow() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	n, ok, err := r.lenAfter(c, 0x80, 0x0f, 0, 0xde, 0xdf)
	if err != nil {
		return 0, err
	}
	if !ok {
		r.off--
		return 0, errNotMap
	}
	if n > (len(r.b)-r.off)/2 {
		return 0, errShort
	}
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
