// batch.go owns the batch frame of the Wasm ABI (docs/wasm-abi.md): one
// input frame with every SKU's records, one output frame with every SKU's
// result. A malformed frame is a frame error; a bad record is a result.
package rules

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"sync"
)

// MaxBatch bounds the item count of one frame.
const MaxBatch = 100_000

var le = binary.LittleEndian

// Item is one SKU of an input frame; Stock and Price alias the frame, nil when missing.
type Item struct {
	Now    int64
	TTLMs  int64
	Source string
	SKU    string
	Region string
	Stock  []byte
	Price  []byte
}

// Sources by their frame byte.
var sources = [...]string{"edge", "regional"}

type frame struct {
	b   []byte
	off int
}

func (f *frame) need(n int, what string) error {
	if n > len(f.b)-f.off {
		return errors.New("frame truncated at byte " + strconv.Itoa(f.off) + " reading " + what)
	}
	return nil
}

func (f *frame) u8(what string) (byte, error) {
	if err := f.need(1, what); err != nil {
		return 0, err
	}
	f.off++
	return f.b[f.off-1], nil
}

func (f *frame) u16(what string) (int, error) {
	if err := f.need(2, what); err != nil {
		return 0, err
	}
	f.off += 2
	return int(le.Uint16(f.b[f.off-2:])), nil
}

func (f *frame) u32(what string) (uint32, error) {
	if err := f.need(4, what); err != nil {
		return 0, err
	}
	f.off += 4
	return le.Uint32(f.b[f.off-4:]), nil
}

func (f *frame) i64(what string) (int64, error) {
	if err := f.need(8, what); err != nil {
		return 0, err
	}
	f.off += 8
	return int64(le.Uint64(f.b[f.off-8:])), nil
}

func (f *frame) bytes(n int, what string) ([]byte, error) {
	if err := f.need(n, what); err != nil {
		return nil, err
	}
	f.off += n
	return f.b[f.off-n : f.off : f.off], nil
}

// record reads an i32 length (-1 = missing) and that many bytes.
// lengthWhat names the length field ("stock length"), what the bytes.
func (f *frame) record(what, lengthWhat string) ([]byte, error) {
	n, err := f.u32(lengthWhat)
	if err != nil {
		return nil, err
	}
	if int32(n) == -1 {
		return nil, nil
	}
	if int32(n) < 0 {
		return nil, errors.New("negative " + what + " length")
	}
	b, err := f.bytes(int(n), what)
	if b == nil && err == nil {
		b = []byte{} // present but empty: invalid, not missing
	}
	return b, err
}

// DecodeBatch parses an input frame.
func DecodeBatch(in []byte) ([]Item, error) {
	return new(batch).decode(in)
}

// batch is the memory RunBatch reuses from one frame to the next: the
// frame's items and their SKU ids, and the decoder with its strings and
// arenas. In Wasm, making them afresh for every frame made the garbage
// collector run every few frames, and while it runs every pointer store
// goes through a write barrier.
type batch struct {
	items   []Item
	skus    []byte
	skuEnds []int
	d       Decoder
}

var batches = sync.Pool{New: func() any { return &batch{d: Decoder{strings: &strCache{}, arena: &arena{}}} }}

// decode parses an input frame into b.items, which it returns.
func (b *batch) decode(in []byte) ([]Item, error) {
	f := &frame{b: in}
	count, err := f.u32("count")
	if err != nil {
		return nil, err
	}
	if count > MaxBatch {
		return nil, errors.New("count " + strconv.FormatUint(uint64(count), 10) + " exceeds " + strconv.Itoa(MaxBatch))
	}
	// Each item takes at least 25 bytes: refuse counts the frame cannot hold before allocating.
	if int(count) > (len(in)-4)/25 {
		return nil, errors.New("count " + strconv.FormatUint(uint64(count), 10) + " does not fit the frame")
	}
	if cap(b.items) < int(count) {
		b.items, b.skuEnds = make([]Item, count), make([]int, count)
	}
	items, skuEnds := b.items[:count], b.skuEnds[:count]
	// SKU ids go back to back into one string for the batch, and a region is
	// converted only when it differs from the item before: two allocations per
	// item cost more in Wasm than the rest of the frame.
	skus := b.skus[:0]
	region := ""
	for i := range items {
		it := &items[i]
		if !f.itemFast(it, &skus, &region) {
			if err := f.item(i, it, &skus, &region); err != nil {
				return nil, err
			}
		}
		skuEnds[i] = len(skus)
	}
	b.skus = skus
	if f.off != len(in) {
		return nil, errors.New("trailing bytes after item " + strconv.Itoa(int(count)))
	}
	all, start := string(skus), 0
	for i := range items {
		items[i].SKU, start = all[start:skuEnds[i]], skuEnds[i]
	}
	return items, nil
}

// record reads a record at b[o:], whose i32 length is there: nil when
// missing (-1), ok false when the length is negative or runs past the end.
func record(b []byte, o int) (r []byte, next int, ok bool) {
	n := int32(le.Uint32(b[o:]))
	o += 4
	switch {
	case n == -1:
		return nil, o, true
	case n < 0 || int(n) > len(b)-o:
		return nil, o, false
	}
	return b[o : o+int(n) : o+int(n)], o + int(n), true
}

// itemFast reads the item at f.off, appends its sku to *skus and keeps
// *region when it is the same, when the item is well formed; at the first
// doubt it reports false with f.off and *skus unchanged, and f.item reads
// the item again for the precise error. (Reading through f's methods was a
// call per field in Wasm.)
func (f *frame) itemFast(it *Item, skus *[]byte, region *string) bool {
	b, o := f.b, f.off
	if len(b)-o < 8+4+1+2 {
		return false
	}
	now, ttl, src, n := int64(le.Uint64(b[o:])), le.Uint32(b[o+8:]), b[o+12], int(le.Uint16(b[o+13:]))
	if o += 15; now < 0 || now > MaxTime || int(src) >= len(sources) || len(b)-o < n+2 {
		return false
	}
	sku := b[o : o+n]
	n = int(le.Uint16(b[o+n:]))
	if o += len(sku) + 2; len(b)-o < n+4 {
		return false
	}
	regionBytes := b[o : o+n]
	stock, o, ok := record(b, o+n)
	if !ok || len(b)-o < 4 {
		return false
	}
	price, o, ok := record(b, o)
	if !ok {
		return false
	}
	f.off = o
	it.Now, it.TTLMs, it.Source, it.Stock, it.Price = now, int64(ttl), sources[src], stock, price
	*skus = append(*skus, sku...)
	if string(regionBytes) != *region {
		*region = string(regionBytes)
	}
	it.Region = *region
	return true
}

// item reads item i at f.off field by field, with the frame's error for the
// first field that is wrong.
func (f *frame) item(i int, it *Item, skus *[]byte, region *string) error {
	var err error
	if it.Now, err = f.i64("now"); err != nil {
		return err
	}
	if it.Now < 0 || it.Now > MaxTime {
		return errors.New("item " + strconv.Itoa(i) + ": now out of range")
	}
	ttl, err := f.u32("ttlMs")
	if err != nil {
		return err
	}
	it.TTLMs = int64(ttl)
	src, err := f.u8("source")
	if err != nil {
		return err
	}
	if int(src) >= len(sources) {
		return errors.New("item " + strconv.Itoa(i) + ": unknown source " + strconv.Itoa(int(src)))
	}
	it.Source = sources[src]
	n, err := f.u16("sku length")
	if err != nil {
		return err
	}
	sku, err := f.bytes(n, "sku")
	if err != nil {
		return err
	}
	*skus = append(*skus, sku...)
	if n, err = f.u16("region length"); err != nil {
		return err
	}
	regionBytes, err := f.bytes(n, "region")
	if err != nil {
		return err
	}
	if string(regionBytes) != *region {
		*region = string(regionBytes)
	}
	it.Region = *region
	if it.Stock, err = f.record("stock", "stock length"); err != nil {
		return err
	}
	if it.Price, err = f.record("price", "price length"); err != nil {
		return err
	}
	return nil
}

// RunBatch runs the rules on every item of an input frame and appends the
// output frame to out[:0]. It never fails: a bad frame gives a status-1 frame.
func RunBatch(out, in []byte) []byte {
	b := batches.Get().(*batch)
	defer batches.Put(b)
	out = out[:0]
	items, err := b.decode(in)
	if err != nil {
		return FrameError(out, err.Error())
	}
	out = append(out, 0)
	out = le.AppendUint32(out, uint32(len(items)))
	d := &b.d
	var res Result
	region, interned := "", ""
	for i := range items {
		it := &items[i]
		if it.Region != region {
			// The records' regions are interned to this very string, so that
			// comparing them with it stops at the pointers.
			region, interned = it.Region, d.internString(it.Region)
		}
		head := len(out)
		out = slices.Grow(out, 1+8+8+4)[:head+1+8+8+4] // code, validUntil, nextAt, len: set below
		out = d.aggregate(&res, out, it.Stock, it.Price, it.SKU, interned, it.Now, it.TTLMs, it.Source)
		if res.Code != OK {
			out = append(out, res.Detail...)
		}
		out[head] = byte(res.Code)
		le.PutUint64(out[head+1:], uint64(res.ValidUntil))
		le.PutUint64(out[head+9:], uint64(res.NextAt))
		le.PutUint32(out[head+17:], uint32(len(out)-head-21))
		tags := len(out)
		out = append(out, 0, 0, 0, 0)
		if res.Code == OK {
			d.tags = appendTags(d.tags[:0], &d.stock, &d.price, interned, it.Now)
			out = appendTagList(out, d.tags)
		}
		le.PutUint32(out[tags:], uint32(len(out)-tags-4))
	}
	return out
}

// FrameError appends a status-1 output frame carrying msg.
func FrameError(out []byte, msg string) []byte {
	out = append(out, 1)
	out = le.AppendUint32(out, uint32(len(msg)))
	return append(out, msg...)
}

// EncodeBatch appends the input frame of items to b (the host's side of the
// ABI, in Go: for tests, benchmarks and Go hosts).
func EncodeBatch(b []byte, items []Item) []byte {
	b = le.AppendUint32(b, uint32(len(items)))
	record := func(b, r []byte) []byte {
		if r == nil {
			return le.AppendUint32(b, 0xffffffff)
		}
		return append(le.AppendUint32(b, uint32(len(r))), r...)
	}
	for i := range items {
		it := &items[i]
		b = le.AppendUint64(b, uint64(it.Now))
		b = le.AppendUint32(b, uint32(it.TTLMs))
		src := byte(0)
		if it.Source == "regional" {
			src = 1
		}
		b = append(b, src)
		b = append(le.AppendUint16(b, uint16(len(it.SKU))), it.SKU...)
		b = append(le.AppendUint16(b, uint16(len(it.Region))), it.Region...)
		b = record(b, it.Stock)
		b = record(b, it.Price)
	}
	return b
}
