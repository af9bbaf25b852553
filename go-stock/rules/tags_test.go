package rules

import (
	"slices"
	"strings"
	"testing"
)

func TestTags(t *testing.T) {
	wh := func(id string, regions ...string) Warehouse { return Warehouse{ID: id, Regions: regions, OnHand: 5} }
	promo := func(id string, endsAt int64, regions ...string) Promotion {
		return Promotion{ID: id, Kind: KindAmount, Value: 1, StartsAt: 0, EndsAt: endsAt, Regions: regions}
	}
	const now = 1_000
	tests := []struct {
		name   string
		whs    []Warehouse
		promos []Promotion
		want   []string
	}{
		{"none", nil, nil, []string{}},
		{"eligible warehouses only", []Warehouse{wh("w2", "cn-east"), wh("w1", "cn-north"), wh("w0", "cn-east", "cn-north")}, nil, []string{"wh:w0", "wh:w2"}},
		{"promotions of the region, in force or to come", nil, []Promotion{promo("later", 5_000), promo("now", 2_000, "cn-east"), promo("elsewhere", 5_000, "cn-north")}, []string{"promo:later", "promo:now"}},
		{"a promotion that has ended is no tag", nil, []Promotion{promo("ended", now), promo("gone", now-1)}, []string{}},
		{"ids that cannot be tag values give none", []Warehouse{wh("has space", "cn-east"), wh(strings.Repeat("x", 129), "cn-east"), wh(strings.Repeat("y", 128), "cn-east")}, []Promotion{promo("é", 5_000), promo("", 5_000)}, []string{"wh:" + strings.Repeat("y", 128)}},
		{"sorted, without repeats", []Warehouse{wh("b", "cn-east"), wh("a", "cn-east"), wh("b", "cn-east")}, []Promotion{promo("z", 5_000), promo("z", 6_000)}, []string{"promo:z", "wh:a", "wh:b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Tags(StockRecord{SKU: "s", Warehouses: tt.whs}, PriceRecord{SKU: "s", Currency: "CNY", Promotions: tt.promos}, "cn-east", now)
			if got == nil {
				got = []string{}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

func TestRunBatchAnswersTagsOfEachAggregate(t *testing.T) {
	stock := encodeMsgpack(t, map[string]any{"sku": "a", "warehouses": []any{
		map[string]any{"id": "sh-2", "regions": []any{"cn-east"}, "onHand": 3, "reserved": 0},
		map[string]any{"id": "bj-1", "regions": []any{"cn-north"}, "onHand": 3, "reserved": 0},
	}, "updatedAt": 1})
	price := encodeMsgpack(t, map[string]any{"sku": "a", "currency": "CNY", "base": 100, "updatedAt": 1, "promotions": []any{
		map[string]any{"id": "flash", "kind": "fixed", "value": 50, "startsAt": 2_000, "endsAt": 3_000},
	}})
	items := []Item{
		{Now: 1_000, TTLMs: 1_000, Source: "edge", SKU: "a", Region: "cn-east", Stock: stock, Price: price},
		{Now: 1_000, TTLMs: 1_000, Source: "edge", SKU: "a", Region: "cn-east", Stock: stock, Price: nil},
	}
	res, err := decodeOutput(RunBatch(nil, EncodeBatch(nil, items)))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res[0].tags, "promo:flash wh:sh-2"; got != want {
		t.Errorf("tags of an aggregate: got %q; want %q", got, want)
	}
	if res[1].Code != NotFound || res[1].tags != "" {
		t.Errorf("a failed SKU: got code %v tags %q; want not_found and no tags", res[1].Code, res[1].tags)
	}
}
