// stock.go owns the stock rules of SPEC §3.
package rules

// Stock statuses.
const (
	InStock    = "in_stock"
	LowStock   = "low_stock"
	OutOfStock = "out_of_stock"
)

// Stock is the stock part of an aggregate.
type Stock struct {
	Available   int64
	Status      string
	MaxOrderQty int64
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// ComputeStock applies the stock rules for region.
func ComputeStock(s StockRecord, region string) Stock { return computeStock(&s, region) }

func computeStock(s *StockRecord, region string) Stock {
	var units int64
	for i := range s.Warehouses {
		if w := &s.Warehouses[i]; contains(w.Regions, region) && w.OnHand > w.Reserved {
			units += w.OnHand - w.Reserved
		}
	}
	available := max(0, units-s.SafetyStock)
	maxQty := available
	if s.MaxPerOrder > 0 {
		maxQty = min(available, s.MaxPerOrder)
	}
	status := InStock
	switch {
	case available == 0:
		status = OutOfStock
	case available <= s.LowStockThreshold:
		status = LowStock
	}
	return Stock{Available: available, Status: status, MaxOrderQty: maxQty}
}
