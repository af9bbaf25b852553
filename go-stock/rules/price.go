// price.go owns the price rules of SPEC §3: the list price, the price in
// force at a time, and the next change of that price.
package rules

import "slices"

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
func ListPrice(p PriceRecord, region string) int64 {
	for _, rp := range p.Regional {
		if rp.Region == region {
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

// PriceAt is the price in force at t in region.
func PriceAt(p PriceRecord, region string, t int64) Price {
	list := ListPrice(p, region)
	best := Price{Amount: list, List: list, Currency: p.Currency}
	for i := range p.Promotions {
		pr := &p.Promotions[i]
		if !applies(pr, region) || t < pr.StartsAt || t >= pr.EndsAt {
			continue
		}
		c := candidate(pr, list)
		if c >= list {
			continue
		}
		// c < list ≤ best.Amount when no promotion was chosen yet, so a tie is always between promotions.
		if c < best.Amount || (c == best.Amount && pr.ID < best.PromoID) {
			best.Amount, best.HasPromo, best.PromoID = c, true, pr.ID
		}
	}
	return best
}

// NextChange is the first change point after t at which the price in force
// differs (amount or promotion) from the one at t; ok is false when none.
func NextChange(p PriceRecord, region string, t int64) (next Next, ok bool) {
	var buf [16]int64
	points := buf[:0]
	for i := range p.Promotions {
		pr := &p.Promotions[i]
		if !applies(pr, region) {
			continue
		}
		if pr.StartsAt > t {
			points = append(points, pr.StartsAt)
		}
		if pr.EndsAt > t {
			points = append(points, pr.EndsAt)
		}
	}
	slices.Sort(points)
	now := PriceAt(p, region, t)
	for i, at := range points {
		if i > 0 && at == points[i-1] {
			continue
		}
		then := PriceAt(p, region, at)
		if then.Amount != now.Amount || then.HasPromo != now.HasPromo || then.PromoID != now.PromoID {
			return Next{At: at, Amount: then.Amount, HasPromo: then.HasPromo, PromoID: then.PromoID}, true
		}
	}
	return Next{}, false
}
