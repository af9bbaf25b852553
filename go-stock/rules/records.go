// records.go owns the records of SPEC §2: their types, and decoding plus
// validation from MessagePack. A record that does not decode or breaks a
// rule is invalid: ErrInvalidRecord, wrapped with the path of the bad field.
package rules

import (
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

// fields tracks which keys of a map were seen.
type fields uint32

func (f *fields) mark(bit int, l loc) error {
	if *f&(1<<bit) != 0 {
		return fail(l, "duplicate key")
	}
	*f |= 1 << bit
	return nil
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

// intIn reads an integer in lo..hi. It is small enough to inline: the path
// of a bad value is built only when there is one.
func (r *reader) intIn(l loc, lo, hi int64) (int64, error) {
	v, err := r.readInt()
	if err != nil || v < lo || v > hi {
		return 0, badInt(l, err, v, lo, hi)
	}
	return v, nil
}

func badInt(l loc, err error, v, lo, hi int64) error {
	if err != nil {
		return fail(l, err.Error())
	}
	return fail(l, "out of range "+strconv.FormatInt(lo, 10)+".."+strconv.FormatInt(hi, 10)+": "+strconv.FormatInt(v, 10))
}

func (r *reader) str(l loc) (string, error) {
	b, err := r.readStrBytes()
	if err != nil {
		return "", fail(l, err.Error())
	}
	return r.intern(b), nil
}

// intern returns b as a string, reusing an equal string seen earlier in the
// batch: region names, currencies and promotion ids repeat across SKUs.
func (r *reader) intern(b []byte) string {
	if r.strings == nil {
		return string(b)
	}
	return r.strings.get(b)
}

// strCache is a direct-mapped cache of strings by length and first and last
// byte. It costs one comparison a hit and no hashing: a map cost a string
// hash a lookup, a large part of the rules' time in Wasm. A collision only
// costs an allocation.
type strCache [256]string

func (c *strCache) get(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	slot := &c[(len(b)*7+int(b[0])*3+int(b[len(b)-1]))&0xff]
	if *slot == string(b) { // no allocation: the compiler compares in place
		return *slot
	}
	s := string(b)
	*slot = s
	return s
}

// skuField reads a record's sku, reusing the key's string when they match.
func (r *reader) skuField(l loc, key string) (string, error) {
	b, err := r.readStrBytes()
	if err != nil {
		return "", fail(l, err.Error())
	}
	if string(b) == key {
		return key, nil
	}
	return string(b), nil
}

func (r *reader) strs(l loc) ([]string, error) {
	n, err := r.readArrayLen()
	if err != nil {
		return nil, fail(l, err.Error())
	}
	out := carve(r.arena, func(a *arena) *[]string { return &a.strs }, n)
	for i := range out {
		b, err := r.readStrBytes()
		if err != nil {
			return nil, fail(loc{parent: l.String(), index: i}, err.Error())
		}
		out[i] = r.intern(b)
	}
	return out, nil
}

func (r *reader) mapLen(l loc) (int, error) {
	n, err := r.readMapLen()
	if err != nil {
		return 0, fail(l, err.Error())
	}
	return n, nil
}

func (r *reader) key(l loc) ([]byte, error) {
	k, err := r.readStrBytes()
	if err != nil {
		return nil, fail(l, "map key: "+err.Error())
	}
	return k, nil
}

// skipUnknown consumes the value of a key the schema does not name.
func (r *reader) skipUnknown(l loc, key []byte) error {
	if err := r.skip(0); err != nil {
		return fail(loc{parent: l.String(), index: -1, field: string(key)}, err.Error())
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
}

// NewDecoder returns a Decoder for a batch of records. It reuses strings
// across the batch, and the memory of one SKU's records for the next: a
// record it decoded stays valid only until its next call of Aggregate.
func NewDecoder() *Decoder { return &Decoder{strings: &strCache{}, arena: &arena{}} }

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

// carve returns n zeroed elements: from the arena's buffer when there is an
// arena (a new chunk when the buffer is full), else a fresh slice.
func carve[T any](a *arena, buf func(*arena) *[]T, n int) []T {
	if a == nil {
		return make([]T, n)
	}
	s := buf(a)
	if cap(*s)-len(*s) < n {
		*s = make([]T, 0, max(64, 2*cap(*s), n))
	}
	start := len(*s)
	*s = (*s)[:start+n]
	out := (*s)[start : start+n : start+n]
	clear(out)
	return out
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
	s := StockRecord{LowStockThreshold: 10}
	r := &reader{b: b, strings: d.strings, arena: d.arena}
	var seen fields
	n, err := r.mapLen(at("stock", ""))
	if err != nil {
		return StockRecord{}, err
	}
	for i := 0; i < n; i++ {
		k, err := r.key(at("stock", ""))
		if err != nil {
			return StockRecord{}, err
		}
		switch string(k) {
		case "sku":
			if err = seen.mark(0, at("stock", "sku")); err == nil {
				s.SKU, err = r.skuField(at("stock", "sku"), sku)
			}
		case "warehouses":
			if err = seen.mark(1, at("stock", "warehouses")); err == nil {
				s.Warehouses, err = r.warehouses()
			}
		case "safetyStock":
			if err = seen.mark(2, at("stock", "safetyStock")); err == nil && !r.isNil() {
				s.SafetyStock, err = r.intIn(at("stock", "safetyStock"), 0, MaxAmount)
			}
		case "lowStockThreshold":
			if err = seen.mark(3, at("stock", "lowStockThreshold")); err == nil && !r.isNil() {
				s.LowStockThreshold, err = r.intIn(at("stock", "lowStockThreshold"), 0, MaxAmount)
			}
		case "maxPerOrder":
			if err = seen.mark(4, at("stock", "maxPerOrder")); err == nil && !r.isNil() {
				s.MaxPerOrder, err = r.intIn(at("stock", "maxPerOrder"), 0, MaxAmount)
			}
		case "updatedAt":
			if err = seen.mark(5, at("stock", "updatedAt")); err == nil {
				s.UpdatedAt, err = r.intIn(at("stock", "updatedAt"), 0, MaxTime)
			}
		default:
			err = r.skipUnknown(at("stock", ""), k)
		}
		if err != nil {
			return StockRecord{}, err
		}
	}
	if err := finish(r, "stock"); err != nil {
		return StockRecord{}, err
	}
	switch {
	case !seen.has(0):
		return StockRecord{}, missing(at("stock", "sku"))
	case !seen.has(1):
		return StockRecord{}, missing(at("stock", "warehouses"))
	case !seen.has(5):
		return StockRecord{}, missing(at("stock", "updatedAt"))
	case s.SKU != sku:
		return StockRecord{}, skuMismatch("stock", s.SKU, sku)
	}
	return s, nil
}

func (r *reader) warehouses() ([]Warehouse, error) {
	n, err := r.readArrayLen()
	if err != nil {
		return nil, fail(at("stock", "warehouses"), err.Error())
	}
	out := carve(r.arena, func(a *arena) *[]Warehouse { return &a.whs }, n)
	for i := range out {
		el := func(field string) loc { return loc{parent: "stock.warehouses", index: i, field: field} }
		w := &out[i]
		var seen fields
		m, err := r.mapLen(el(""))
		if err != nil {
			return nil, err
		}
		for j := 0; j < m; j++ {
			k, err := r.key(el(""))
			if err != nil {
				return nil, err
			}
			switch string(k) {
			case "id":
				if err = seen.mark(0, el("id")); err == nil {
					w.ID, err = r.str(el("id"))
				}
			case "regions":
				if err = seen.mark(1, el("regions")); err == nil {
					w.Regions, err = r.strs(el("regions"))
				}
			case "onHand":
				if err = seen.mark(2, el("onHand")); err == nil {
					w.OnHand, err = r.intIn(el("onHand"), 0, MaxAmount)
				}
			case "reserved":
				if err = seen.mark(3, el("reserved")); err == nil {
					w.Reserved, err = r.intIn(el("reserved"), 0, MaxAmount)
				}
			default:
				err = r.skipUnknown(el(""), k)
			}
			if err != nil {
				return nil, err
			}
		}
		if err := seen.require(el, "id", "regions", "onHand", "reserved"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DecodePrice decodes and validates a PriceRecord stored under key SKU sku.
func (d *Decoder) DecodePrice(b []byte, sku string) (PriceRecord, error) {
	var p PriceRecord
	r := &reader{b: b, strings: d.strings, arena: d.arena}
	var seen fields
	n, err := r.mapLen(at("price", ""))
	if err != nil {
		return PriceRecord{}, err
	}
	for i := 0; i < n; i++ {
		k, err := r.key(at("price", ""))
		if err != nil {
			return PriceRecord{}, err
		}
		switch string(k) {
		case "sku":
			if err = seen.mark(0, at("price", "sku")); err == nil {
				p.SKU, err = r.skuField(at("price", "sku"), sku)
			}
		case "currency":
			if err = seen.mark(1, at("price", "currency")); err == nil {
				p.Currency, err = r.str(at("price", "currency"))
				if err == nil && !isCurrency(p.Currency) {
					err = fail(at("price", "currency"), "must be three upper-case letters, got "+strconv.Quote(p.Currency))
				}
			}
		case "base":
			if err = seen.mark(2, at("price", "base")); err == nil {
				p.Base, err = r.intIn(at("price", "base"), 0, MaxAmount)
			}
		case "regional":
			if err = seen.mark(3, at("price", "regional")); err == nil && !r.isNil() {
				p.Regional, err = r.regional()
			}
		case "promotions":
			if err = seen.mark(4, at("price", "promotions")); err == nil && !r.isNil() {
				p.Promotions, err = r.promotions()
			}
		case "updatedAt":
			if err = seen.mark(5, at("price", "updatedAt")); err == nil {
				p.UpdatedAt, err = r.intIn(at("price", "updatedAt"), 0, MaxTime)
			}
		default:
			err = r.skipUnknown(at("price", ""), k)
		}
		if err != nil {
			return PriceRecord{}, err
		}
	}
	if err := finish(r, "price"); err != nil {
		return PriceRecord{}, err
	}
	if err := seen.require(func(f string) loc { return at("price", f) }, "sku", "currency", "base"); err != nil {
		return PriceRecord{}, err
	}
	if !seen.has(5) {
		return PriceRecord{}, missing(at("price", "updatedAt"))
	}
	if p.SKU != sku {
		return PriceRecord{}, skuMismatch("price", p.SKU, sku)
	}
	return p, nil
}

func isCurrency(s string) bool {
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

func (r *reader) regional() ([]RegionalPrice, error) {
	n, err := r.mapLen(at("price", "regional"))
	if err != nil {
		return nil, err
	}
	out := carve(r.arena, func(a *arena) *[]RegionalPrice { return &a.regs }, n)
	for i := range out {
		k, err := r.key(at("price", "regional"))
		if err != nil {
			return nil, err
		}
		out[i].Region = r.intern(k)
		if out[i].Amount, err = r.intIn(loc{parent: "price.regional", index: -1, field: out[i].Region}, 0, MaxAmount); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *reader) promotions() ([]Promotion, error) {
	n, err := r.readArrayLen()
	if err != nil {
		return nil, fail(at("price", "promotions"), err.Error())
	}
	out := carve(r.arena, func(a *arena) *[]Promotion { return &a.promos }, n)
	for i := range out {
		el := func(field string) loc { return loc{parent: "price.promotions", index: i, field: field} }
		pr := &out[i]
		var seen fields
		m, err := r.mapLen(el(""))
		if err != nil {
			return nil, err
		}
		for j := 0; j < m; j++ {
			k, err := r.key(el(""))
			if err != nil {
				return nil, err
			}
			switch string(k) {
			case "id":
				if err = seen.mark(0, el("id")); err == nil {
					pr.ID, err = r.str(el("id"))
				}
			case "kind":
				if err = seen.mark(1, el("kind")); err == nil {
					pr.Kind, err = r.kind(el("kind"))
				}
			case "value":
				if err = seen.mark(2, el("value")); err == nil {
					pr.Value, err = r.intIn(el("value"), 0, MaxAmount)
				}
			case "startsAt":
				if err = seen.mark(3, el("startsAt")); err == nil {
					pr.StartsAt, err = r.intIn(el("startsAt"), 0, MaxTime)
				}
			case "endsAt":
				if err = seen.mark(4, el("endsAt")); err == nil {
					pr.EndsAt, err = r.intIn(el("endsAt"), 0, MaxTime)
				}
			case "regions":
				if err = seen.mark(5, el("regions")); err == nil && !r.isNil() {
					pr.Regions, err = r.strs(el("regions"))
				}
			default:
				err = r.skipUnknown(el(""), k)
			}
			if err != nil {
				return nil, err
			}
		}
		if err := seen.require(el, "id", "kind", "value", "startsAt", "endsAt"); err != nil {
			return nil, err
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
func (r *reader) kind(l loc) (string, error) {
	b, err := r.readStrBytes()
	if err != nil {
		return "", fail(l, err.Error())
	}
	switch string(b) {
	case KindPercent:
		return KindPercent, nil
	case KindAmount:
		return KindAmount, nil
	case KindFixed:
		return KindFixed, nil
	}
	return "", fail(l, "must be percent, amount or fixed, got "+strconv.Quote(string(b)))
}
