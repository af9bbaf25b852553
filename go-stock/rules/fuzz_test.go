package rules

import (
	"errors"
	"testing"
)

func seedRecords(f *testing.F, stock bool) {
	for _, v := range loadVectors(f) {
		rec := v.Price
		if stock {
			rec = v.Stock
		}
		if rec != nil {
			f.Add(encodeMsgpack(f, rec), v.SKU)
		}
	}
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}, "a")
	f.Add([]byte{0xdd, 0x7f, 0xff, 0xff, 0xff}, "a")
}

// Corrupt bytes never panic, and every failure is ErrInvalidRecord.
func FuzzDecodeStock(f *testing.F) {
	seedRecords(f, true)
	f.Fuzz(func(t *testing.T, b []byte, sku string) {
		if _, err := DecodeStock(b, sku); err != nil && !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("got %v; want ErrInvalidRecord", err)
		}
	})
}

func FuzzDecodePrice(f *testing.F) {
	seedRecords(f, false)
	f.Fuzz(func(t *testing.T, b []byte, sku string) {
		if _, err := DecodePrice(b, sku); err != nil && !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("got %v; want ErrInvalidRecord", err)
		}
	})
}

// Any frame gives a well-formed output frame: never a panic.
func FuzzBatch(f *testing.F) {
	vs := loadVectors(f)
	items := make([]Item, 0, 8)
	for _, v := range vs[:8] {
		items = append(items, Item{Now: v.Now, TTLMs: v.TTL * 1000, SKU: v.SKU, Region: v.Region, Stock: recordBytes(f, v.Stock), Price: recordBytes(f, v.Price)})
	}
	f.Add(EncodeBatch(nil, items))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		out := RunBatch(nil, frame)
		if len(out) == 0 || out[0] > 1 {
			t.Fatalf("bad output status")
		}
		if out[0] == 0 {
			if _, err := decodeOutput(out); err != nil {
				t.Fatal(err)
			}
		}
	})
}
