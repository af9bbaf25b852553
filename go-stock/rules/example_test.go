package rules_test

import (
	"fmt"

	"github.com/edge-prewarm/go-stock/rules"
)

// mp is a tiny hand-encoded MessagePack record for the example.
func ExampleAggregateRecords() {
	stock := []byte("\x83\xa3sku\xa1a\xaawarehouses\x91\x84\xa2id\xa1w\xa7regions\x91\xa7cn-east\xa6onHand\x0c\xa8reserved\x02\xa9updatedAt\x01")
	price := []byte("\x84\xa3sku\xa1a\xa8currency\xa3CNY\xa4base\xcd\x27\x10\xa9updatedAt\x01")
	res, json := rules.AggregateRecords(nil, stock, price, "a", "cn-east", 1_000, 30_000, "edge")
	fmt.Println(res.Code, res.ValidUntil)
	fmt.Println(string(json))
	// Output:
	// ok 31000
	// {"sku":"a","region":"cn-east","stock":{"available":10,"status":"low_stock","maxOrderQty":10},"price":{"amount":10000,"list":10000,"currency":"CNY","promoId":null},"next":null,"source":"edge","computedAt":1000,"validUntil":31000}
}
