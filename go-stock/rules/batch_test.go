package rules

import (
	"errors"
	"strings"
	"testing"
)

type outResult struct {
	Result
	body []byte
	tags string
}

// decodeOutput parses an output frame (the host's side, for tests).
func decodeOutput(out []byte) ([]outResult, error) {
	f := &frame{b: out}
	status, err := f.u8("status")
	if err != nil {
		return nil, err
	}
	if status != 0 {
		n, _ := f.u32("len")
		msg, _ := f.bytes(int(n), "msg")
		return nil, errors.New("frame error: " + string(msg))
	}
	count, err := f.u32("count")
	if err != nil {
		return nil, err
	}
	res := make([]outResult, count)
	for i := range res {
		code, _ := f.u8("code")
		vu, _ := f.i64("validUntil")
		na, _ := f.i64("nextAt")
		n, _ := f.u32("len")
		body, err := f.bytes(int(n), "body")
		if err != nil {
			return nil, err
		}
		tn, _ := f.u32("tags len")
		tags, err := f.bytes(int(tn), "tags")
		if err != nil {
			return nil, err
		}
		res[i] = outResult{Result: Result{Code: Code(code), ValidUntil: vu, NextAt: na}, body: body, tags: string(tags)}
		if res[i].Code != OK {
			res[i].Detail = string(body)
		}
	}
	if f.off != len(out) {
		return nil, errors.New("trailing bytes in output")
	}
	return res, nil
}

func TestRunBatchRejectsMalformedFrames(t *testing.T) {
	good := EncodeBatch(nil, []Item{{Now: 1, TTLMs: 1000, Source: "edge", SKU: "a", Region: "r", Stock: []byte{0x80}, Price: nil}})
	tests := []struct {
		name  string
		frame []byte
		want  string
	}{
		{"empty", nil, "truncated"},
		{"count only", []byte{1, 0, 0, 0}, "does not fit"},
		{"huge count", []byte{0xff, 0xff, 0xff, 0x7f}, "exceeds"},
		{"truncated item", good[:len(good)-3], "truncated"},
		{"trailing bytes", append(append([]byte{}, good...), 0), "trailing"},
		{"record past the end", append(append([]byte{}, good[:len(good)-4]...), 0xff, 0, 0, 0), "truncated"},
		{"negative length", append(append([]byte{}, good[:len(good)-4]...), 0xfe, 0xff, 0xff, 0xff), "negative"},
		{"unknown source", func() []byte { b := append([]byte{}, good...); b[16] = 9; return b }(), "unknown source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := RunBatch(nil, tt.frame)
			if out[0] != 1 {
				t.Fatalf("got status %d; want 1 (frame error)", out[0])
			}
			if msg := string(out[5:]); !strings.Contains(msg, tt.want) {
				t.Fatalf("got message %q; want it to mention %q", msg, tt.want)
			}
		})
	}
}

func TestRunBatchKeepsPerSKUFailuresInsideTheOutput(t *testing.T) {
	stock := encodeMsgpack(t, map[string]any{"sku": "a", "warehouses": []any{}, "updatedAt": int64(1)})
	price := encodeMsgpack(t, map[string]any{"sku": "a", "currency": "EUR", "base": int64(100), "updatedAt": int64(1)})
	items := []Item{
		{Now: 5, TTLMs: 1000, Source: "regional", SKU: "a", Region: "r", Stock: stock, Price: price},
		{Now: 5, TTLMs: 1000, SKU: "b", Region: "r"},
		{Now: 5, TTLMs: 1000, SKU: "a", Region: "r", Stock: []byte{0xc1}, Price: price},
		{Now: 5, TTLMs: 1000, SKU: "a", Region: "r", Stock: []byte{}, Price: price},
	}
	res, err := decodeOutput(RunBatch(nil, EncodeBatch(nil, items)))
	if err != nil {
		t.Fatal(err)
	}
	wantCodes := []Code{OK, NotFound, InvalidRecord, InvalidRecord}
	for i, want := range wantCodes {
		if res[i].Code != want {
			t.Errorf("item %d: got %s (%s); want %s", i, res[i].Code, res[i].Detail, want)
		}
	}
	if !strings.Contains(string(res[0].body), `"source":"regional"`) || res[0].ValidUntil != 1005 || res[0].NextAt != -1 {
		t.Errorf("item 0: got %s validUntil=%d nextAt=%d; want source regional, validUntil 1005, nextAt -1", res[0].body, res[0].ValidUntil, res[0].NextAt)
	}
}
