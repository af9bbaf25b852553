// tags.go owns the surrogate keys of SPEC §9 that the records decide: the
// promotions of the aggregate's region that have not ended, and its
// eligible warehouses. The node adds the others (sku, the request's tags).
package rules

import "slices"

// MaxTagValue is the longest tag value (SPEC §9).
const MaxTagValue = 128

// tagValue reports whether id can be a tag's value: 1 to MaxTagValue
// printable ASCII characters, no space.
func tagValue(id string) bool {
	if len(id) == 0 || len(id) > MaxTagValue {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// Tags returns the record-derived tags of the aggregate of s and p in region
// at now: "promo:{id}" for each promotion that applies to region (price rule
// 2) and ends after now (in force or to come), "wh:{id}" for each eligible
// warehouse (stock rule 1); sorted, without repeats. An id that cannot be a
// tag value gives no tag.
func Tags(s StockRecord, p PriceRecord, region string, now int64) []string {
	return appendTags(nil, &s, &p, region, now)
}

func appendTags(dst []string, s *StockRecord, p *PriceRecord, region string, now int64) []string {
	start := len(dst)
	for i := range p.Promotions {
		if pr := &p.Promotions[i]; pr.EndsAt > now && applies(pr, region) && tagValue(pr.ID) {
			dst = append(dst, "promo:"+pr.ID)
		}
	}
	for i := range s.Warehouses {
		if w := &s.Warehouses[i]; contains(w.Regions, region) && tagValue(w.ID) {
			dst = append(dst, "wh:"+w.ID)
		}
	}
	slices.Sort(dst[start:])
	return slices.Compact(dst)
}

// appendTagList appends tags to dst, space-separated.
func appendTagList(dst []byte, tags []string) []byte {
	for i, t := range tags {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, t...)
	}
	return dst
}
