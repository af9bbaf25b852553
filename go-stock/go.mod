module github.com/edge-prewarm/go-stock

go 1.24
