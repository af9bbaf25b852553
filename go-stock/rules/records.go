// records.go owns the records of SPEC §2: their types, and decoding plus
// validation from MessagePack. A record that does not decode or breaks a
// rule is invalid: ErrInvalidRecord, wrapped with the path of the bad field.
package rules

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// ErrInvalidRecord is wrapped by every decoding or validation failure.
var ErrInvalidRecord = errors.New("invalid record")

// Limits of SPEC §2.
const (
	MaxAmount = 1_000_000_000_000 // money and quantities: 0..10^12
	MaxTime   = 1<<53 - 1         // times: 0..2^53-1
	MaxBasis  = 10_000            // percent values, in basis points
)

// Warehouse is one stock location of a StockRecord.
type Warehouse struct {
	ID       string
	Regions  []string
	OnHand   int64
	Reserved int64
}

// StockRecord is the stock of one SKU across warehouses.
type StockRecord struct {
	SKU               string
	Warehouses        []Warehouse
	SafetyStock       int64
	LowStockThreshold int64
	MaxPerOrder       int64
	UpdatedAt         int64
}

// Promotion kinds.
const (
	KindPercent = "percent"
	KindAmount  = "amount"
	KindFixed   = "fixed"
)

// Promotion is one timed price reduction.
type Promotion struct {
	ID       string
	Kind     string
	Value    int64
	StartsAt int64
	EndsAt   int64
	Regions  []string
}

// RegionalPrice overrides the base price in one region.
type RegionalPrice struct {
	Region string
	Amount int64
}

// PriceRecord is the list price, regional overrides and promotions of one SKU.
type PriceRecord struct {
	SKU        string
	Currency   string
	Base       int64
	Regional   []RegionalPrice
	Promotions []Promotion
	UpdatedAt  int64
}

// invalid is an ErrInvalidRecord error at a field path.
type invalid struct {
	at  loc
	why string
}

func (e *invalid) Error() string { return e.at.String() + ": " + e.why }
func (e *invalid) Unwrap() error { return ErrInvalidRecord }

// loc names a field as parent[index].field; it is only turned into a string
// when a record is invalid, so that decoding valid records does not allocate
// paths.
type loc struct {
	parent string // "stock.warehouses"
	index  int    // -1: not an element
	field  string // "onHand"; "" for the element or the parent itself
}

func at(parent, field string) loc { return loc{parent: parent, index: -1, field: field} }

func (l loc) String() string {
	s := l.parent
	if l.index >= 0 {
		s += "[" + strconv.Itoa(l.index) + "]"
	}
	if l.field != "" {
		s += "." + l.field
	}
	return s
}

func fail(l loc, why string) error { return &invalid{at: l, why: why} }

// failAt is err at parent[index].field (index -1: not an element). The
// decoders call it on their failure paths only: a loc built ahead of time
// was stored to the stack on every read in Wasm.
func failAt(parent string, index int, field string, err error) error {
	return fail(loc{parent: parent, index: index, field: field}, err.Error())
}

// keyError is the error of a map key that could not be read.
func keyError(parent string, index int, err error) error {
	return fail(loc{parent: parent, index: index}, "map key: "+err.Error())
}

var errDuplicate = errors.New("duplicate key")

// fields tracks which keys of a map were seen.
type fields uint32

// dup marks the key of bit as seen and reports whether it was already.
func (f *fields) dup(bit int) bool {
	d := *f&(1<<bit) != 0
	*f |= 1 << bit
	return d
}

func (f fields) has(bit int) bool { return f&(1<<bit) != 0 }

// require checks that the keys of bits 0..len(names)-1 were all seen; the
// first one missing is the error.
func (f fields) require(at func(string) loc, names ...string) error {
	if all := fields(1)<<len(names) - 1; f&all == all {
		return nil
	}
	for bit, name := range names {
		if !f.has(bit) {
			return missing(at(name))
		}
	}
	return nil
}

func finish(r *reader, what string) error {
	if r.off != len(r.b) {
		return fail(at(what, ""), "trailing bytes after the record")
	}
	return nil
}

func missing(l loc) error { return fail(l, "required") }

func skuMismatch(what, got, want string) error {
	return fail(at(what, "sku"), "is "+strconv.Quote(got)+", the key is "+strconv.Quote(want))
}

// Decoder decodes records. The zero Decoder is ready to use; NewDecoder
// gives one that reuses repeated strings across the records it decodes.
type Decoder struct {
	strings *strCache
	// arena, when set, backs the slices of decoded records; Aggregate
	// reuses it SKU after SKU (see NewDecoder).
	arena *arena
	// The records and aggregate of the SKU Aggregate is at: kept here, and
	// passed by pointer, because in Wasm every copy of a struct over 16
	// bytes (and every zeroing over 32) is a memory.copy (memory.fill)
	// that V8 runs as a call into C.
	stock StockRecord
	price PriceRecord
	agg   Aggregate
	times times
	// tags is RunBatch's scratch list of an aggregate's tags.
	tags []string
}

// NewDecoder returns a Decoder for a batch of records. It reuses strings
// across the batch, and the memory of one SKU's records for the next: a
// record it decoded stays valid only until its next call of Aggregate.
func NewDecoder() *Decoder { return &Decoder{strings: &strCache{}, arena: &arena{}} }

// intern returns b as a string, reusing an equal string seen earlier in the
// batch: region names, currencies and promotion ids repeat across SKUs. It
// looks strings up in d.strings, a direct-mapped cache. A string of up to 8
// bytes (regions, warehouse ids, currencies, most promotion ids) is looked
// up by its bytes read as one integer, which takes no call to compare; a
// longer one by length and first and last byte, and compared. No hashing of
// the whole string: a map cost a string hash a lookup, a large part of the
// rules' time in Wasm. A collision only costs an allocation. When cap(b) ≥
// 8, the bytes past len(b) up to 8 are read (not kept): readStrBytes leaves
// the record's capacity to them.
func (d *Decoder) intern(b []byte) string {
	c, n := d.strings, len(b)
	if c == nil || n == 0 || n > 8 || cap(b) < 8 {
		return c.get(b)
	}
	key := binary.LittleEndian.Uint64(b[:8]) & (^uint64(0) >> (64 - 8*n))
	e := &c.short[(key*0x9e3779b97f4a7c15)>>56]
	if e.key != key || len(e.s) != n {
		e.key, e.s = key, string(b)
	}
	return e.s
}

// internString is intern for a string: it returns the cached string equal
// to s, else caches s itself.
func (d *Decoder) internString(s string) string {
	c, n := d.strings, len(s)
	if c == nil || n == 0 || n > 8 {
		return c.getString(s)
	}
	var key uint64
	for i := n - 1; i >= 0; i-- {
		key = key<<8 | uint64(s[i])
	}
	e := &c.short[(key*0x9e3779b97f4a7c15)>>56]
	if e.key != key || len(e.s) != n {
		e.key, e.s = key, s
	}
	return e.s
}

// strCache holds the strings of Decoder.intern.
type strCache struct {
	short [256]struct {
		key uint64 // the bytes of s, little-endian
		s   string
	}
	long [256]string
}

// get is intern for the strings not looked up by their bytes (c may be nil).
func (c *strCache) get(b []byte) string {
	n := len(b)
	if c == nil || n == 0 {
		return string(b)
	}
	slot := &c.long[(n*7+int(b[0])*3+int(b[n-1]))&0xff]
	if *slot != string(b) { // no allocation: the compiler compares in place
		*slot = string(b)
	}
	return *slot
}

func (c *strCache) getString(s string) string {
	n := len(s)
	if c == nil || n == 0 {
		return s
	}
	slot := &c.long[(n*7+int(s[0])*3+int(s[n-1]))&0xff]
	if *slot != s {
		*slot = s
	}
	return *slot
}

// skuString is a record's sku, reusing the key's string when they match.
func skuString(b []byte, key string) string {
	if string(b) == key {
		return key
	}
	return string(b)
}

// arena holds the slices of the records of one SKU. In Wasm an allocation
// costs far more than natively; four slices per SKU were most of them.
type arena struct {
	strs   []string
	whs    []Warehouse
	regs   []RegionalPrice
	promos []Promotion
}

func (a *arena) reset() {
	if a == nil {
		return
	}
	a.strs, a.whs, a.regs, a.promos = a.strs[:0], a.whs[:0], a.regs[:0], a.promos[:0]
}

// carve returns n elements from an arena's buffer (a new chunk when it is
// full). They are not zeroed: the decoders set every field of every element.
func carve[T any](buf *[]T, n int) []T {
	if cap(*buf)-len(*buf) < n {
		*buf = make([]T, 0, max(64, 2*cap(*buf), n))
	}
	start := len(*buf)
	*buf = (*buf)[:start+n]
	return (*buf)[start : start+n : start+n]
}

// DecodeStock decodes and validates a StockRecord stored under key SKU sku.
func DecodeStock(b []byte, sku string) (StockRecord, error) {
	return (&Decoder{}).DecodeStock(b, sku)
}

// DecodePrice decodes and validates a PriceRecord stored under key SKU sku.
func DecodePrice(b []byte, sku string) (PriceRecord, error) {
	return (&Decoder{}).DecodePrice(b, sku)
}

// DecodeStock decodes and validates a StockRecord stored under key SKU sku.
func (d *Decoder) DecodeStock(b []byte, sku string) (StockRecord, error) {
	var s StockRecord
	if err := d.decodeStock(&s, b, sku); err != nil {
		return StockRecord{}, err
	}
	return s, nil
}

// DecodePrice decodes and validates a PriceRecord stored under key SKU sku.
func (d *Decoder) DecodePrice(b []byte, sku string) (PriceRecord, error) {
	var p PriceRecord
	if err := d.decodePrice(&p, b, sku); err != nil {
		return PriceRecord{}, err
	}
	return p, nil
}

// The decoders below read every field inline and build the path of a bad
// field only on the way out (failAt). They are kept out of line
// (go:noinline) on purpose: profile-guided optimisation inlines only the
// calls it saw in the profile, so once a decoder is inlined into its caller
// the readers inside it stop being inlined, and in Wasm a call costs more
// than most reads.

// decodeStock decodes into *s, which it overwrites field by field; on an
// error *s is left partly written.
//
//go:noinline
func (d *Decoder) decodeStock(s *StockRecord, b []byte, sku string) error {
	s.SKU, s.Warehouses, s.SafetyStock, s.LowStockThreshold, s.MaxPerOrder, s.UpdatedAt = "", nil, 0, 10, 0, 0
	r := reader{b: b}
	var seen fields
	n, err := r.readMapLen()
	if err != nil {
		return failAt("stock", -1, "", err)
	}
	for i := 0; i < n; i++ {
		k, err := r.readStrBytes()
		if err != nil {
			return keyError("stock", -1, err)
		}
		var field string // the field of err, when err is not already wrapped
		switch string(k) {
		case "sku":
			if field = "sku"; seen.dup(0) {
				err = errDuplicate
			} else {
				var v []byte
				v, err = r.readStrBytes()
				s.SKU = skuString(v, sku)
			}
		case "warehouses":
			if seen.dup(1) {
				field, err = "warehouses", errDuplicate
			} else {
				s.Warehouses, err = d.warehouses(&r)
			}
		case "safetyStock":
			if field = "safetyStock"; seen.dup(2) {
				err = errDuplicate
			} else if !r.isNil() {
				s.SafetyStock, err = r.intIn(0, MaxAmount)
			}
		case "lowStockThreshold":
			if field = "lowStockThreshold"; seen.dup(3) {
				err = errDuplicate
			} else if !r.isNil() {
				s.LowStockThreshold, err = r.intIn(0, MaxAmount)
			}
		case "maxPerOrder":
			if field = "maxPerOrder"; seen.dup(4) {
				err = errDuplicate
			} else if !r.isNil() {
				s.MaxPerOrder, err = r.intIn(0, MaxAmount)
			}
		case "updatedAt":
			if field = "updatedAt"; seen.dup(5) {
				err = errDuplicate
			} else {
				s.UpdatedAt, err = r.intIn(0, MaxTime)
			}
		default:
			if err = r.skip(0); err != nil {
				field = string(k)
			}
		}
		if err != nil {
			if field == "" {
				return err
			}
			return failAt("stock", -1, field, err)
		}
	}
	if err := finish(&r, "stock"); err != nil {
		return err
	}
	switch {
	case !seen.has(0):
		return missing(at("stock", "sku"))
	case !seen.has(1):
		return missing(at("stock", "warehouses"))
	case !seen.has(5):
		return missing(at("stock", "updatedAt"))
	case s.SKU != sku:
		return skuMismatch("stock", s.SKU, sku)
	}
	return nil
}

//go:noinline
func (d *Decoder) warehouses(r *reader) ([]Warehouse, error) {
	n, err := r.readArrayLen()
	if err != nil {
		return nil, failAt("stock", -1, "warehouses", err)
	}
	var out []Warehouse
	if d.arena != nil {
		out = carve(&d.arena.whs, n)
	} else {
		out = make([]Warehouse, n)
	}
	for i := range out {
		w := &out[i]
		if d.warehouseInOrder(r, w) {
			continue
		}
		var seen fields
		m, err := r.readMapLen()
		if err != nil {
			return nil, failAt("stock.warehouses", i, "", err)
		}
		for j := 0; j < m; j++ {
			k, err := r.readStrBytes()
			if err != nil {
				return nil, keyError("stock.warehouses", i, err)
			}
			var field string
			switch string(k) {
			case "id":
				if field = "id"; seen.dup(0) {
					err = errDuplicate
				} else {
					var v []byte
					v, err = r.readStrBytes()
					w.ID = d.intern(v)
				}
			case "regions":
				if seen.dup(1) {
					field, err = "regions", errDuplicate
				} else {
					w.Regions, err = d.strs(r, "stock.warehouses", i, "regions")
				}
			case "onHand":
				if field = "onHand"; seen.dup(2) {
					err = errDuplicate
				} else {
					w.OnHand, err = r.intIn(0, MaxAmount)
				}
			case "reserved":
				if field = "reserved"; seen.dup(3) {
					err = errDuplicate
				} else {
					w.Reserved, err = r.intIn(0, MaxAmount)
				}
			default:
				if err = r.skip(0); err != nil {
					field = string(k)
				}
			}
			if err != nil {
				if field == "" {
					return nil, err
				}
				return nil, failAt("stock.warehouses", i, field, err)
			}
		}
		if seen != 0b1111 { // all four are required: every field of *w is set
			el := func(field string) loc { return loc{parent: "stock.warehouses", index: i, field: field} }
			return nil, seen.require(el, "id", "regions", "onHand", "reserved")
		}
	}
	return out, nil
}

// warehouseInOrder reads a warehouse written as msgpackr writes the
// feeds' objects: a map of exactly id, regions, onHand and reserved in
// that order, with fixstr keys, a fixstr id and fixstr regions. It checks
// each key with a few byte comparisons in straight-line code, where the
// general loop (a switch and a memequal call per key) cost several times
// more in Wasm; the values are checked as the loop checks them. At the
// first difference it reports false with r.off unchanged, and the loop
// reads the warehouse instead (and finds its error, if any).
//
//go:noinline
func (d *Decoder) warehouseInOrder(r *reader, w *Warehouse) bool {
	b, start := r.b, r.off
	o := start
	// Header (fixmap or map16 of 4) and "id": 7 bytes at most; the
	// comparisons of constant strings of up to 6 bytes are inline.
	switch {
	case len(b)-o >= 6 && b[o] == 0x84 && string(b[o+1:o+4]) == "\xa2id":
		o += 4
	case len(b)-o >= 8 && string(b[o:o+6]) == "\xde\x00\x04\xa2id":
		o += 6
	default:
		return false
	}
	c := b[o] // len(b) > o: checked above
	if c&0xe0 != 0xa0 || int(c&0x1f) > len(b)-o-1-9 {
		return false
	}
	id := b[o+1 : o+1+int(c&0x1f)]
	o += 1 + len(id)
	if string(b[o:o+4]) != "\xa7reg" || string(b[o+4:o+8]) != "ions" {
		return false
	}
	o += 8
	if c = b[o]; c&0xf0 != 0x90 || int(c&0x0f) > len(b)-o-1 {
		return false
	}
	n := int(c & 0x0f)
	o++
	var regions []string
	if d.arena != nil {
		regions = carve(&d.arena.strs, n)
	} else {
		regions = make([]string, n)
	}
	for k := range regions {
		if o >= len(b) {
			return false
		}
		c := b[o]
		if c&0xe0 != 0xa0 || int(c&0x1f) > len(b)-o-1 {
			return false
		}
		regions[k] = d.intern(b[o+1 : o+1+int(c&0x1f)])
		o += 1 + int(c&0x1f)
	}
	if len(b)-o < 7 || string(b[o:o+4]) != "\xa6onH" || string(b[o+4:o+7]) != "and" {
		return false
	}
	r.off = o + 7
	onHand, err := r.intIn(0, MaxAmount)
	if o = r.off; err != nil || len(b)-o < 9 || string(b[o:o+4]) != "\xa8res" || string(b[o+4:o+9]) != "erved" {
		r.off = start
		return false
	}
	r.off = o + 9
	reserved, err := r.intIn(0, MaxAmount)
	if err != nil {
		r.off = start
		return false
	}
	w.ID, w.Regions, w.OnHand, w.Reserved = d.intern(id), regions, onHand, reserved
	return true
}

// strs reads the array of strings at parent[index].field.
//
//go:noinline
func (d *Decoder) strs(r *reader, parent string, index int, field string) ([]string, error) {
	n, err := r.readArrayLen()
	if err != nil {
		return nil, failAt(parent, index, field, err)
	}
	var out []string
	if d.arena != nil {
		out = carve(&d.arena.strs, n)
	} else {
		out = make([]string, n)
	}
	for i := range out {
		b, err := r.readStrBytes()
		if err != nil {
			return nil, failAt(loc{parent: parent, index: index, field: field}.String(), i, "", err)
		}
		out[i] = d.intern(b)
	}
	return out, nil
}

// decodePrice decodes into *p, which it overwrites field by field; on an
// error *p is left partly written.
//
//go:noinline
func (d *Decoder) decodePrice(p *PriceRecord, b []byte, sku string) error {
	p.SKU, p.Currency, p.Base, p.Regional, p.Promotions, p.UpdatedAt = "", "", 0, nil, nil, 0
	r := reader{b: b}
	var seen fields
	n, err := r.readMapLen()
	if err != nil {
		return failAt("price", -1, "", err)
	}
	for i := 0; i < n; i++ {
		k, err := r.readStrBytes()
		if err != nil {
			return keyError("price", -1, err)
		}
		var field string // the field of err, when err is not already wrapped
		var v []byte
		switch string(k) {
		case "sku":
			if field = "sku"; seen.dup(0) {
				err = errDuplicate
			} else {
				v, err = r.readStrBytes()
				p.SKU = skuString(v, sku)
			}
		case "currency":
			if field = "currency"; seen.dup(1) {
				err = errDuplicate
			} else if v, err = r.readStrBytes(); err == nil && !isCurrency(v) {
				err = errors.New("must be three upper-case letters, got " + strconv.Quote(string(v)))
			} else if err == nil {
				p.Currency = d.intern(v)
			}
		case "base":
			if field = "base"; seen.dup(2) {
				err = errDuplicate
			} else {
				p.Base, err = r.intIn(0, MaxAmount)
			}
		case "regional":
			if seen.dup(3) {
				field, err = "regional", errDuplicate
			} else if !r.isNil() {
				p.Regional, err = d.regional(&r)
			}
		case "promotions":
			if seen.dup(4) {
				field, err = "promotions", errDuplicate
			} else if !r.isNil() {
				p.Promotions, err = d.promotions(&r)
			}
		case "updatedAt":
			if field = "updatedAt"; seen.dup(5) {
				err = errDuplicate
			} else {
				p.UpdatedAt, err = r.intIn(0, MaxTime)
			}
		default:
			if err = r.skip(0); err != nil {
				field = string(k)
			}
		}
		if err != nil {
			if field == "" {
				return err
			}
			return failAt("price", -1, field, err)
		}
	}
	if err := finish(&r, "price"); err != nil {
		return err
	}
	if err := seen.require(func(f string) loc { return at("price", f) }, "sku", "currency", "base"); err != nil {
		return err
	}
	if !seen.has(5) {
		return missing(at("price", "updatedAt"))
	}
	if p.SKU != sku {
		return skuMismatch("price", p.SKU, sku)
	}
	return nil
}

func isCurrency(s []byte) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

//go:noinline
func (d *Decoder) regional(r *reader) ([]RegionalPrice, error) {
	n, err := r.readMapLen()
	if err != nil {
		return nil, failAt("price", -1, "regional", err)
	}
	var out []RegionalPrice
	if d.arena != nil {
		out = carve(&d.arena.regs, n)
	} else {
		out = make([]RegionalPrice, n)
	}
	for i := range out {
		k, err := r.readStrBytes()
		if err != nil {
			return nil, keyError("price.regional", -1, err)
		}
		out[i].Region = d.intern(k)
		if out[i].Amount, err = r.intIn(0, MaxAmount); err != nil {
			return nil, failAt("price.regional", -1, out[i].Region, err)
		}
	}
	return out, nil
}

//go:noinline
func (d *Decoder) promotions(r *reader) ([]Promotion, error) {
	n, err := r.readArrayLen()
	if err != nil {
		return nil, failAt("price", -1, "promotions", err)
	}
	var out []Promotion
	if d.arena != nil {
		out = carve(&d.arena.promos, n)
	} else {
		out = make([]Promotion, n)
	}
	for i := range out {
		pr := &out[i]
		pr.Regions = nil // optional: the only field that may stay unset
		var seen fields
		m, err := r.readMapLen()
		if err != nil {
			return nil, failAt("price.promotions", i, "", err)
		}
		for j := 0; j < m; j++ {
			k, err := r.readStrBytes()
			if err != nil {
				return nil, keyError("price.promotions", i, err)
			}
			var field string
			switch string(k) {
			case "id":
				if field = "id"; seen.dup(0) {
					err = errDuplicate
				} else {
					var v []byte
					v, err = r.readStrBytes()
					pr.ID = d.intern(v)
				}
			case "kind":
				if field = "kind"; seen.dup(1) {
					err = errDuplicate
				} else {
					pr.Kind, err = r.kind()
				}
			case "value":
				if field = "value"; seen.dup(2) {
					err = errDuplicate
				} else {
					pr.Value, err = r.intIn(0, MaxAmount)
				}
			case "startsAt":
				if field = "startsAt"; seen.dup(3) {
					err = errDuplicate
				} else {
					pr.StartsAt, err = r.intIn(0, MaxTime)
				}
			case "endsAt":
				if field = "endsAt"; seen.dup(4) {
					err = errDuplicate
				} else {
					pr.EndsAt, err = r.intIn(0, MaxTime)
				}
			case "regions":
				if seen.dup(5) {
					field, err = "regions", errDuplicate
				} else if !r.isNil() {
					pr.Regions, err = d.strs(r, "price.promotions", i, "regions")
				}
			default:
				if err = r.skip(0); err != nil {
					field = string(k)
				}
			}
			if err != nil {
				if field == "" {
					return nil, err
				}
				return nil, failAt("price.promotions", i, field, err)
			}
		}
		el := func(field string) loc { return loc{parent: "price.promotions", index: i, field: field} }
		if seen&0b11111 != 0b11111 {
			return nil, seen.require(el, "id", "kind", "value", "startsAt", "endsAt")
		}
		if pr.Kind == KindPercent && pr.Value > MaxBasis {
			return nil, fail(el("value"), "percent is in basis points 0..10000, got "+strconv.FormatInt(pr.Value, 10))
		}
		if pr.EndsAt <= pr.StartsAt {
			return nil, fail(el("endsAt"), "must be > startsAt")
		}
	}
	return out, nil
}

// kind reads a promotion kind as one of the package's constants (no allocation).
func (r *reader) kind() (string, error) {
	b, err := r.readStrBytes()
	if err != nil {
		return "", err
	}
	switch string(b) {
	case KindPercent:
		return KindPercent, nil
	case KindAmount:
		return KindAmount, nil
	case KindFixed:
		return KindFixed, nil
	}
	return "", errors.New("must be percent, amount or fixed, got " + strconv.Quote(string(b)))
}
