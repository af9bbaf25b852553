package rules

import (
	"errors"
	"fmt"
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

// Corrupt bytes never panic, and every failure is ErrInvalidRecord. A batch
// Decoder (string cache, arena) decodes exactly as the plain one does.
func FuzzDecodeStock(f *testing.F) {
	seedRecords(f, true)
	batch := NewDecoder()
	f.Fuzz(func(t *testing.T, b []byte, sku string) {
		s, err := DecodeStock(b, sku)
		if err != nil && !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("got %v; want ErrInvalidRecord", err)
		}
		batch.arena.reset()
		s2, err2 := batch.DecodeStock(b, sku)
		if fmt.Sprintf("%+v %v", s, err) != fmt.Sprintf("%+v %v", s2, err2) { // %+v: a nil and an empty slice are alike
			t.Fatalf("batch decoder: %+v, %v; plain: %+v, %v", s2, err2, s, err)
		}
	})
}

func FuzzDecodePrice(f *testing.F) {
	seedRecords(f, false)
	batch := NewDecoder()
	f.Fuzz(func(t *testing.T, b []byte, sku string) {
		p, err := DecodePrice(b, sku)
		if err != nil && !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("got %v; want ErrInvalidRecord", err)
		}
		batch.arena.reset()
		p2, err2 := batch.DecodePrice(b, sku)
		if fmt.Sprintf("%+v %v", p, err) != fmt.Sprintf("%+v %v", p2, err2) {
			t.Fatalf("batch decoder: %+v, %v; plain: %+v, %v", p2, err2, p, err)
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
