package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestComputeStock(t *testing.T) {
	wh := func(onHand, reserved int64, regions ...string) Warehouse {
		return Warehouse{ID: "w", Regions: regions, OnHand: onHand, Reserved: reserved}
	}
	tests := []struct {
		name   string
		rec    StockRecord
		region string
		want   Stock
	}{
		{"only eligible warehouses count", StockRecord{Warehouses: []Warehouse{wh(10, 0, "a"), wh(100, 0, "b")}, LowStockThreshold: 5}, "a", Stock{10, InStock, 10}},
		{"over-reserved warehouse counts as zero", StockRecord{Warehouses: []Warehouse{wh(2, 5, "a"), wh(7, 3, "a")}, LowStockThreshold: 10}, "a", Stock{4, LowStock, 4}},
		{"safety stock never makes availability negative", StockRecord{Warehouses: []Warehouse{wh(3, 0, "a")}, SafetyStock: 10, LowStockThreshold: 10}, "a", Stock{0, OutOfStock, 0}},
		{"maxPerOrder caps the order quantity", StockRecord{Warehouses: []Warehouse{wh(50, 0, "a")}, MaxPerOrder: 2, LowStockThreshold: 10}, "a", Stock{50, InStock, 2}},
		{"low stock includes the threshold", StockRecord{Warehouses: []Warehouse{wh(10, 0, "a")}, LowStockThreshold: 10}, "a", Stock{10, LowStock, 10}},
		{"no warehouse in the region", StockRecord{Warehouses: []Warehouse{wh(10, 0, "b")}, LowStockThreshold: 10}, "a", Stock{0, OutOfStock, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ComputeStock(tt.rec, tt.region); got != tt.want {
				t.Fatalf("got %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestPriceAtAndNextChange(t *testing.T) {
	rec := PriceRecord{
		Currency: "CNY",
		Base:     10_000,
		Regional: []RegionalPrice{{"us", 12_000}},
		Promotions: []Promotion{
			{ID: "pct", Kind: KindPercent, Value: 1_500, StartsAt: 100, EndsAt: 200},
			{ID: "amt", Kind: KindAmount, Value: 1_500, StartsAt: 100, EndsAt: 300, Regions: []string{"cn"}},
			{ID: "flash", Kind: KindFixed, Value: 5_000, StartsAt: 200, EndsAt: 250},
			{ID: "worse", Kind: KindFixed, Value: 20_000, StartsAt: 0, EndsAt: 1_000},
		},
	}
	tests := []struct {
		name     string
		region   string
		t        int64
		amount   int64
		promo    string
		nextAt   int64
		nextAmt  int64
		nextPrmo string
	}{
		{"list price before any promotion", "cn", 50, 10_000, "", 100, 8_500, "amt"},
		{"tie between percent and amount: smallest id", "cn", 100, 8_500, "amt", 200, 5_000, "flash"},
		{"regional list price and region-limited promotion", "us", 100, 10_200, "pct", 200, 5_000, "flash"},
		{"end is exclusive", "cn", 250, 8_500, "amt", 300, 10_000, ""},
		{"no change left", "cn", 300, 10_000, "", -1, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PriceAt(rec, tt.region, tt.t)
			if p.Amount != tt.amount || p.PromoID != tt.promo || p.HasPromo != (tt.promo != "") {
				t.Fatalf("price: got %d %q; want %d %q", p.Amount, p.PromoID, tt.amount, tt.promo)
			}
			n, ok := NextChange(rec, tt.region, tt.t)
			if !ok {
				if tt.nextAt != -1 {
					t.Fatalf("next: got none; want %d", tt.nextAt)
				}
				return
			}
			if n.At != tt.nextAt || n.Amount != tt.nextAmt || n.PromoID != tt.nextPrmo {
				t.Fatalf("next: got %+v; want at %d amount %d promo %q", n, tt.nextAt, tt.nextAmt, tt.nextPrmo)
			}
		})
	}
}

func TestDecodeRejectsInvalidFieldsWithTheirPath(t *testing.T) {
	stock := func(mut func(m map[string]any)) []byte {
		m := map[string]any{"sku": "a", "warehouses": []any{map[string]any{"id": "w", "regions": []any{"r"}, "onHand": int64(1), "reserved": int64(0)}}, "updatedAt": int64(1)}
		mut(m)
		return encodeMsgpack(t, m)
	}
	price := func(mut func(m map[string]any)) []byte {
		m := map[string]any{"sku": "a", "currency": "EUR", "base": int64(100), "updatedAt": int64(1),
			"promotions": []any{map[string]any{"id": "p", "kind": "fixed", "value": int64(1), "startsAt": int64(1), "endsAt": int64(2)}}}
		mut(m)
		return encodeMsgpack(t, m)
	}
	promo := func(k string, v any) func(m map[string]any) {
		return func(m map[string]any) { m["promotions"].([]any)[0].(map[string]any)[k] = v }
	}
	tests := []struct {
		name  string
		stock bool
		b     []byte
		path  string
	}{
		{"sku differs from the key", true, stock(func(m map[string]any) { m["sku"] = "b" }), "stock.sku"},
		{"negative onHand", true, stock(func(m map[string]any) { m["warehouses"].([]any)[0].(map[string]any)["onHand"] = int64(-1) }), "stock.warehouses[0].onHand"},
		{"missing updatedAt", true, stock(func(m map[string]any) { delete(m, "updatedAt") }), "stock.updatedAt"},
		{"warehouses not an array", true, stock(func(m map[string]any) { m["warehouses"] = "nope" }), "stock.warehouses"},
		{"quantity over 10^12", true, stock(func(m map[string]any) { m["safetyStock"] = int64(1_000_000_000_001) }), "stock.safetyStock"},
		{"float base", false, price(func(m map[string]any) { m["base"] = 1.5 }), "price.base"},
		{"lower-case currency", false, price(func(m map[string]any) { m["currency"] = "eur" }), "price.currency"},
		{"percent over 10000", false, price(func(m map[string]any) { promo("kind", "percent")(m); promo("value", int64(10_001))(m) }), "price.promotions[0].value"},
		{"unknown kind", false, price(promo("kind", "bogus")), "price.promotions[0].kind"},
		{"endsAt not after startsAt", false, price(promo("endsAt", int64(1))), "price.promotions[0].endsAt"},
		{"time past 2^53-1", false, price(promo("endsAt", int64(1)<<53)), "price.promotions[0].endsAt"},
		{"regional price negative", false, price(func(m map[string]any) { m["regional"] = map[string]any{"x": int64(-1)} }), "price.regional.x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.stock {
				_, err = DecodeStock(tt.b, "a")
			} else {
				_, err = DecodePrice(tt.b, "a")
			}
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("got %v; want ErrInvalidRecord", err)
			}
			if !strings.HasPrefix(err.Error(), tt.path+":") {
				t.Fatalf("got %q; want the path %s", err, tt.path)
			}
		})
	}
}

func TestDecodeAcceptsEveryIntegerWidthAndSkipsUnknownKeys(t *testing.T) {
	// updatedAt as uint64 (0xcf), onHand as int8, an unknown key holding an ext value and a nested map.
	b := []byte{0x85,
		0xa3, 's', 'k', 'u', 0xa1, 'a',
		0xa9, 'u', 'p', 'd', 'a', 't', 'e', 'd', 'A', 't', 0xcf, 0, 0, 1, 0x9a, 0, 0, 0, 0,
		0xaa, 'w', 'a', 'r', 'e', 'h', 'o', 'u', 's', 'e', 's', 0x91, 0x84,
		0xa2, 'i', 'd', 0xa1, 'w', 0xa7, 'r', 'e', 'g', 'i', 'o', 'n', 's', 0x91, 0xa1, 'r',
		0xa6, 'o', 'n', 'H', 'a', 'n', 'd', 0xd0, 0x05, 0xa8, 'r', 'e', 's', 'e', 'r', 'v', 'e', 'd', 0x00,
		0xa1, 'x', 0xd5, 0x01, 0xaa, 0xbb,
		0xa1, 'y', 0x81, 0xa1, 'z', 0xc0,
	}
	s, err := DecodeStock(b, "a")
	if err != nil {
		t.Fatal(err)
	}
	if s.UpdatedAt != 0x19a<<32 || s.Warehouses[0].OnHand != 5 {
		t.Fatalf("got updatedAt %d onHand %d; want %d and 5", s.UpdatedAt, s.Warehouses[0].OnHand, int64(0x19a)<<32)
	}
}

func TestAppendStringEscapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{`plain`, `"plain"`},
		{"q\"b\\", `"q\"b\\"`},
		{"nl\n\t\x01", `"nl\n\t\u0001"`},
		{"促销", `"促销"`},
		{"bad\xffutf8", "\"bad\ufffdutf8\""},
	}
	for _, tt := range tests {
		if got := string(appendString(nil, tt.in)); got != tt.want {
			t.Errorf("appendString(%q): got %s; want %s", tt.in, got, tt.want)
		}
	}
}

// Records in the feeds' key order take the decoders' in-order fast path;
// the same records with their keys sorted take the general loop. Both must
// decode alike, valid or not.
func TestDecodeInFeedOrderAsInAnyOrder(t *testing.T) {
	order := map[string]int{}
	for i, k := range []string{"sku", "warehouses", "id", "regions", "onHand", "reserved", "safetyStock", "lowStockThreshold", "maxPerOrder", "currency", "base", "regional", "promotions", "kind", "value", "startsAt", "endsAt", "updatedAt"} {
		order[k] = i
	}
	var feedOrder func(v any) any
	feedOrder = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			before := func(a, b string) bool {
				oa, okA := order[a]
				ob, okB := order[b]
				if okA != okB {
					return okA
				}
				if oa != ob {
					return oa < ob
				}
				return a < b
			}
			for i := 1; i < len(keys); i++ { // insertion sort by feed order
				for j := i; j > 0 && before(keys[j], keys[j-1]); j-- {
					keys[j], keys[j-1] = keys[j-1], keys[j]
				}
			}
			f := ordered{}
			for _, k := range keys {
				f = append(f, k, feedOrder(x[k]))
			}
			return f
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = feedOrder(e)
			}
			return out
		}
		return v
	}
	batch := NewDecoder()
	for _, v := range loadVectors(t) {
		if v.Stock == nil {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			want, wantErr := DecodeStock(encodeCompact(t, v.Stock), v.SKU)
			ordered := encodeCompact(t, feedOrder(v.Stock))
			got, err := DecodeStock(ordered, v.SKU)
			batch.arena.reset()
			got2, err2 := batch.DecodeStock(ordered, v.SKU)
			for _, g := range []struct {
				s   StockRecord
				err error
			}{{got, err}, {got2, err2}} {
				if a, b := fmt.Sprintf("%+v %v", g.s, g.err), fmt.Sprintf("%+v %v", want, wantErr); a != b {
					t.Fatalf("in feed order: %s; sorted: %s", a, b)
				}
			}
		})
	}
}
