// aggregate.go owns the aggregate of SPEC §4: computing it from the two
// records (its JSON is json.go's).
package rules

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
	var a Aggregate
	compute(&a, &s, &p, region, now, ttlMs, source)
	return a
}

// compute is Compute into *a, which it overwrites field by field (see Decoder.agg).
func compute(a *Aggregate, s *StockRecord, p *PriceRecord, region string, now, ttlMs int64, source string) {
	a.SKU, a.Region, a.Source, a.ComputedAt, a.ValidUntil = s.SKU, region, source, now, now+ttlMs
	a.Stock = computeStock(s, region)
	list := listPrice(p, region)
	a.Price.Amount, a.Price.HasPromo, a.Price.PromoID = priceAt(p, region, list, now)
	a.Price.List, a.Price.Currency = list, p.Currency
	if a.HasNext = nextChange(&a.Next, p, region, now, &a.Price); a.HasNext {
		a.ValidUntil = min(a.ValidUntil, a.Next.At)
	} else {
		a.Next.At, a.Next.Amount, a.Next.HasPromo, a.Next.PromoID = 0, 0, false, ""
	}
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
	var res Result
	dst = d.aggregate(&res, dst, stock, price, sku, region, now, ttlMs, source)
	return res, dst
}

// aggregate is Aggregate into *res, which it overwrites field by field.
func (d *Decoder) aggregate(res *Result, dst, stock, price []byte, sku, region string, now, ttlMs int64, source string) []byte {
	res.Code, res.ValidUntil, res.NextAt, res.Detail = NotFound, 0, -1, ""
	switch {
	case stock == nil && price == nil:
		res.Detail = "no stock and no price record"
		return dst
	case stock == nil:
		res.Detail = "no stock record"
		return dst
	case price == nil:
		res.Detail = "no price record"
		return dst
	}
	d.arena.reset()
	err := d.decodeStock(&d.stock, stock, sku)
	if err == nil {
		err = d.decodePrice(&d.price, price, sku)
	}
	if err != nil {
		res.Code, res.Detail = InvalidRecord, err.Error()
		return dst
	}
	a := &d.agg
	compute(a, &d.stock, &d.price, region, now, ttlMs, source)
	res.Code, res.ValidUntil = OK, a.ValidUntil
	if a.HasNext {
		res.NextAt = a.Next.At
	}
	return a.appendJSON(dst, &d.times)
}
