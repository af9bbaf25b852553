// aggregate.go owns the aggregate of SPEC §4: computing it from the two
// records, and writing its JSON by hand (keys in the SPEC's order, no
// reflection) into a caller's buffer.
package rules

import (
	"strconv"
	"unicode/utf8"
)

// Code is the outcome of one SKU.
type Code uint8

// Outcomes of one SKU; their values are the Wasm ABI's result codes.
const (
	OK            Code = 0
	NotFound      Code = 1
	InvalidRecord Code = 2
)

// String is the SPEC's failure code.
func (c Code) String() string {
	switch c {
	case OK:
		return "ok"
	case NotFound:
		return "not_found"
	default:
		return "invalid_record"
	}
}

// Aggregate is what the edge caches and serves for one SKU in one region.
type Aggregate struct {
	SKU        string
	Region     string
	Stock      Stock
	Price      Price
	Next       Next // the next price change, when HasNext
	HasNext    bool
	Source     string
	ComputedAt int64
	ValidUntil int64
}

// Compute applies the rules at now; validity lasts ttlMs from now, capped by
// the next price change.
func Compute(s StockRecord, p PriceRecord, region string, now, ttlMs int64, source string) Aggregate {
	a := Aggregate{
		SKU:        s.SKU,
		Region:     region,
		Stock:      ComputeStock(s, region),
		Price:      PriceAt(p, region, now),
		Source:     source,
		ComputedAt: now,
		ValidUntil: now + ttlMs,
	}
	if n, ok := NextChange(p, region, now); ok {
		a.Next, a.HasNext = n, true
		a.ValidUntil = min(a.ValidUntil, n.At)
	}
	return a
}

// Result is the outcome of Aggregate for one SKU.
type Result struct {
	Code       Code
	ValidUntil int64 // 0 unless OK
	NextAt     int64 // -1 when there is no next change or not OK
	Detail     string
}

// AggregateRecords decodes both records (nil = missing), computes the
// aggregate and appends its JSON to dst. A missing record is NotFound; a
// record that does not decode or validate is InvalidRecord, with the path
// of the bad field in Detail. dst is returned unchanged unless OK.
func AggregateRecords(dst, stock, price []byte, sku, region string, now, ttlMs int64, source string) (Result, []byte) {
	return (&Decoder{}).Aggregate(dst, stock, price, sku, region, now, ttlMs, source)
}

// Aggregate is AggregateRecords with d's string reuse.
func (d *Decoder) Aggregate(dst, stock, price []byte, sku, region string, now, ttlMs int64, source string) (Result, []byte) {
	switch {
	case stock == nil && price == nil:
		return Result{Code: NotFound, NextAt: -1, Detail: "no stock and no price record"}, dst
	case stock == nil:
		return Result{Code: NotFound, NextAt: -1, Detail: "no stock record"}, dst
	case price == nil:
		return Result{Code: NotFound, NextAt: -1, Detail: "no price record"}, dst
	}
	d.arena.reset()
	s, err := d.DecodeStock(stock, sku)
	if err != nil {
		return Result{Code: InvalidRecord, NextAt: -1, Detail: err.Error()}, dst
	}
	p, err := d.DecodePrice(price, sku)
	if err != nil {
		return Result{Code: InvalidRecord, NextAt: -1, Detail: err.Error()}, dst
	}
	a := Compute(s, p, region, now, ttlMs, source)
	next := int64(-1)
	if a.HasNext {
		next = a.Next.At
	}
	return Result{Code: OK, ValidUntil: a.ValidUntil, NextAt: next}, a.AppendJSON(dst)
}

// AppendJSON appends the aggregate as SPEC §4 JSON.
func (a *Aggregate) AppendJSON(b []byte) []byte {
	b = append(b, `{"sku":`...)
	b = appendString(b, a.SKU)
	b = append(b, `,"region":`...)
	b = appendString(b, a.Region)
	b = append(b, `,"stock":{"available":`...)
	b = strconv.AppendInt(b, a.Stock.Available, 10)
	b = append(b, `,"status":`...)
	b = appendString(b, a.Stock.Status)
	b = append(b, `,"maxOrderQty":`...)
	b = strconv.AppendInt(b, a.Stock.MaxOrderQty, 10)
	b = append(b, `},"price":{"amount":`...)
	b = strconv.AppendInt(b, a.Price.Amount, 10)
	b = append(b, `,"list":`...)
	b = strconv.AppendInt(b, a.Price.List, 10)
	b = append(b, `,"currency":`...)
	b = appendString(b, a.Price.Currency)
	b = append(b, `,"promoId":`...)
	b = appendPromo(b, a.Price.HasPromo, a.Price.PromoID)
	b = append(b, `},"next":`...)
	if !a.HasNext {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"at":`...)
		b = strconv.AppendInt(b, a.Next.At, 10)
		b = append(b, `,"amount":`...)
		b = strconv.AppendInt(b, a.Next.Amount, 10)
		b = append(b, `,"promoId":`...)
		b = appendPromo(b, a.Next.HasPromo, a.Next.PromoID)
		b = append(b, '}')
	}
	b = append(b, `,"source":`...)
	b = appendString(b, a.Source)
	b = append(b, `,"computedAt":`...)
	b = strconv.AppendInt(b, a.ComputedAt, 10)
	b = append(b, `,"validUntil":`...)
	b = strconv.AppendInt(b, a.ValidUntil, 10)
	return append(b, '}')
}

func appendPromo(b []byte, has bool, id string) []byte {
	if !has {
		return append(b, "null"...)
	}
	return appendString(b, id)
}

const hex = "0123456789abcdef"

// plain reports whether s is printable ASCII without quotes or backslashes:
// a JSON string as it is (ids, regions, currencies nearly always are).
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// appendString appends s as a JSON string. Control characters are escaped;
// invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	if plain(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
