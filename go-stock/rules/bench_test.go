package rules

import (
	"os"
	"strconv"
	"testing"
)

// benchItems is a realistic 1,000-SKU batch: 3 warehouses, 2-4 promotions,
// some regional prices, encoded as msgpackr encodes them (map16s, keys in the
// feeds' order, the SPEC's).
func benchItems(b *testing.B) []Item {
	const now = 1_763_970_000_000
	items := make([]Item, 1000)
	for i := range items {
		sku := "sku-" + strconv.Itoa(i)
		promos := []any{
			ordered{"id", "weekly", "kind", "percent", "value", int64(1500), "startsAt", int64(now - 3_600_000), "endsAt", int64(now + 86_400_000)},
			ordered{"id", "flash", "kind", "fixed", "value", int64(4999), "startsAt", int64(now + 60_000), "endsAt", int64(now + 660_000), "regions", []any{"cn-east"}},
		}
		if i%2 == 0 {
			promos = append(promos, ordered{"id", "vip", "kind", "amount", "value", int64(500), "startsAt", int64(now), "endsAt", int64(now + 30_000)})
		}
		if i%4 == 0 {
			promos = append(promos, ordered{"id", "late", "kind", "percent", "value", int64(3000), "startsAt", int64(now + 90_000_000), "endsAt", int64(now + 99_000_000)})
		}
		price := ordered{"sku", sku, "currency", "CNY", "base", int64(9999 + i)}
		if i%3 == 0 {
			price = append(price, "regional", ordered{"us-west", int64(12_000), "cn-north", int64(9_500)})
		}
		price = append(price, "promotions", promos, "updatedAt", int64(now))
		stock := ordered{"sku", sku, "warehouses", []any{
			ordered{"id", "sh", "regions", []any{"cn-east"}, "onHand", int64(i % 500), "reserved", int64(3)},
			ordered{"id", "bj", "regions", []any{"cn-north", "cn-east"}, "onHand", int64(40), "reserved", int64(2)},
			ordered{"id", "la", "regions", []any{"us-west"}, "onHand", int64(90), "reserved", int64(0)},
		}, "safetyStock", int64(2), "lowStockThreshold", int64(10), "maxPerOrder", int64(i % 3), "updatedAt", int64(now)}
		items[i] = Item{Now: now, TTLMs: 30_000, Source: "edge", SKU: sku, Region: "cn-east", Stock: encodeCompact(b, stock), Price: encodeCompact(b, price)}
	}
	return items
}

func BenchmarkAggregate1000(b *testing.B) {
	items := benchItems(b)
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		d := NewDecoder()
		for i := range items {
			it := &items[i]
			_, buf = d.Aggregate(buf[:0], it.Stock, it.Price, it.SKU, it.Region, it.Now, it.TTLMs, it.Source)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/sku")
}

// BenchmarkBatch1000 runs a 1,000-SKU frame through RunBatch, as the Wasm export does.
// With GO_STOCK_BENCH_FRAME set, it runs that frame instead (bench/rules.ts
// writes the frame it also feeds the Wasm module, so both measure the same input).
func BenchmarkBatch1000(b *testing.B) {
	var frame []byte
	if path := os.Getenv("GO_STOCK_BENCH_FRAME"); path != "" {
		var err error
		if frame, err = os.ReadFile(path); err != nil {
			b.Fatal(err)
		}
	} else {
		frame = EncodeBatch(nil, benchItems(b))
	}
	items, err := DecodeBatch(frame)
	if err != nil {
		b.Fatal(err)
	}
	var out []byte
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		out = RunBatch(out, frame)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(items)), "ns/sku")
}
