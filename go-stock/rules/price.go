// price.go owns the price rules of SPEC §3: the list price, the price in
// force at a time, and the next change of that price.
package rules

// Price is the price in force at one time; HasPromo is false when no promotion applies.
type Price struct {
	Amount   int64
	List     int64
	Currency string
	HasPromo bool
	PromoID  string
}

// Next is the next change of the price in force.
type Next struct {
	At       int64
	Amount   int64
	HasPromo bool
	PromoID  string
}

// ListPrice is regional[region] if present, else base.
func ListPrice(p PriceRecord, region string) int64 { return listPrice(&p, region) }

// PriceAt is the price in force at t in region.
func PriceAt(p PriceRecord, region string, t int64) Price {
	list := listPrice(&p, region)
	amount, hasPromo, promoID := priceAt(&p, region, list, t)
	return Price{Amount: amount, List: list, Currency: p.Currency, HasPromo: hasPromo, PromoID: promoID}
}

// NextChange is the first change point after t at which the price in force
// differs (amount or promotion) from the one at t; ok is false when none.
func NextChange(p PriceRecord, region string, t int64) (next Next, ok bool) {
	now := PriceAt(p, region, t)
	ok = nextChange(&next, &p, region, t, &now)
	return next, ok
}

// The functions below take and fill pointers: in Wasm a copy of a struct
// over 16 bytes is a memory.copy, which V8 runs as a call into C.

func listPrice(p *PriceRecord, region string) int64 {
	for i := range p.Regional {
		if rp := &p.Regional[i]; rp.Region == region {
			return rp.Amount
		}
	}
	return p.Base
}

func applies(pr *Promotion, region string) bool {
	return len(pr.Regions) == 0 || contains(pr.Regions, region)
}

func candidate(pr *Promotion, list int64) int64 {
	switch pr.Kind {
	case KindPercent:
		return list - list*pr.Value/MaxBasis // list ≤ 10^12, value ≤ 10^4: no overflow
	case KindAmount:
		return max(0, list-pr.Value)
	default: // KindFixed
		return min(list, pr.Value)
	}
}

// priceAt is the amount and promotion of the price in force at t in region,
// whose list price is list.
func priceAt(p *PriceRecord, region string, list, t int64) (amount int64, hasPromo bool, promoID string) {
	amount = list
	for i := range p.Promotions {
		pr := &p.Promotions[i]
		if t < pr.StartsAt || t >= pr.EndsAt || !applies(pr, region) {
			continue
		}
		c := candidate(pr, list)
		if c >= list {
			continue
		}
		// c < list ≤ amount when no promotion was chosen yet, so a tie is always between promotions.
		if c < amount || (c == amount && pr.ID < promoID) {
			amount, hasPromo, promoID = c, true, pr.ID
		}
	}
	return amount, hasPromo, promoID
}

// nextChange sets *next to the first change after t of now, the price in
// force at t, and reports whether there is one. It visits the change points in
// increasing order by finding the least one after the last, rather than
// sorting them: promotions are few, and a sort costs more in Wasm.
func nextChange(next *Next, p *PriceRecord, region string, t int64, now *Price) bool {
	for last := t; ; {
		at, found := int64(0), false
		for i := range p.Promotions {
			pr := &p.Promotions[i]
			c, ok := int64(0), false // the least change point of pr after last
			if pr.StartsAt > last {
				c, ok = pr.StartsAt, true
			}
			if pr.EndsAt > last && (!ok || pr.EndsAt < c) {
				c, ok = pr.EndsAt, true
			}
			if !ok || (found && c >= at) || !applies(pr, region) {
				continue
			}
			at, found = c, true
		}
		if !found {
			return false
		}
		amount, hasPromo, promoID := priceAt(p, region, now.List, at)
		if amount != now.Amount || hasPromo != now.HasPromo || promoID != now.PromoID {
			next.At, next.Amount, next.HasPromo, next.PromoID = at, amount, hasPromo, promoID
			return true
		}
		last = at
	}
}
