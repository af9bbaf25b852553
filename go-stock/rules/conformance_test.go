package rules

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

type vector struct {
	Name   string         `json:"name"`
	SKU    string         `json:"sku"`
	Region string         `json:"region"`
	Now    int64          `json:"now"`
	TTL    int64          `json:"ttl"`
	Stock  any            `json:"stock"`
	Price  any            `json:"price"`
	Expect map[string]any `json:"expect"`
}

// sharedVectors is the contract's own file, beside the repository when it is checked out with it.
var sharedVectors = filepath.Join("..", "..", "..", "shared", "fixtures", "conformance.json")

// vectorsFile is $CONFORMANCE_FILE, else the contract's file beside the
// repository, else the copy kept in testdata (a clone on its own), which
// TestConformanceCopyIsCurrent holds equal to the contract's.
func vectorsFile() string {
	if p := os.Getenv("CONFORMANCE_FILE"); p != "" {
		return p
	}
	if _, err := os.Stat(sharedVectors); err == nil {
		return sharedVectors
	}
	return filepath.Join("testdata", "conformance.json")
}

// TestConformanceCopyIsCurrent fails when the copy in testdata is not the contract's file (when that is at hand).
func TestConformanceCopyIsCurrent(t *testing.T) {
	shared, err := os.ReadFile(sharedVectors)
	if err != nil {
		t.Skipf("no contract beside the repository (%v): the copy in testdata is used", err)
	}
	copied, err := os.ReadFile(filepath.Join("testdata", "conformance.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared, copied) {
		t.Fatalf("testdata/conformance.json differs from %s: copy it over", sharedVectors)
	}
}

// loadVectors reads the conformance vectors (vectorsFile).
func loadVectors(t testing.TB) []vector {
	t.Helper()
	path := vectorsFile()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("conformance vectors: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var file struct {
		Vectors []vector `json:"vectors"`
	}
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("conformance vectors: %v", err)
	}
	if len(file.Vectors) == 0 {
		t.Fatal("conformance vectors: none in file")
	}
	return file.Vectors
}

func recordBytes(t testing.TB, v any) []byte {
	if v == nil {
		return nil
	}
	return encodeMsgpack(t, v)
}

func normalize(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

func checkVector(t *testing.T, v vector, res Result, out []byte) {
	t.Helper()
	if want, isErr := v.Expect["error"]; isErr {
		if res.Code.String() != want {
			t.Fatalf("got %s (%s); want %s", res.Code, res.Detail, want)
		}
		return
	}
	if res.Code != OK {
		t.Fatalf("got %s (%s); want an aggregate", res.Code, res.Detail)
	}
	want := map[string]any{"source": "edge"}
	for k, x := range v.Expect {
		want[k] = x
	}
	wantJSON, _ := json.Marshal(want)
	if got, w := normalize(t, out), normalize(t, wantJSON); !reflect.DeepEqual(got, w) {
		t.Fatalf("got  %s\nwant %s", out, wantJSON)
	}
	if vu, _ := v.Expect["validUntil"].(json.Number).Int64(); res.ValidUntil != vu {
		t.Errorf("ValidUntil: got %d; want %d", res.ValidUntil, vu)
	}
}

func TestConformanceVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			res, out := AggregateRecords(nil, recordBytes(t, v.Stock), recordBytes(t, v.Price), v.SKU, v.Region, v.Now, v.TTL*1000, "edge")
			checkVector(t, v, res, out)
		})
	}
}

// The Wasm module runs the vectors through the batch frame; so does this test.
func TestConformanceVectorsThroughBatchFrame(t *testing.T) {
	vectors := loadVectors(t)
	items := make([]Item, len(vectors))
	for i, v := range vectors {
		items[i] = Item{Now: v.Now, TTLMs: v.TTL * 1000, Source: "edge", SKU: v.SKU, Region: v.Region, Stock: recordBytes(t, v.Stock), Price: recordBytes(t, v.Price)}
	}
	results, err := decodeOutput(RunBatch(nil, EncodeBatch(nil, items)))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(vectors) {
		t.Fatalf("got %d results; want %d", len(results), len(vectors))
	}
	for i, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			r := results[i]
			checkVector(t, v, r.Result, r.body)
		})
	}
}
