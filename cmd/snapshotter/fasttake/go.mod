module a/fasttake

go 1.26.0

require (
	github.com/vmihailenco/msgpack/v5 v5.4.1
	snapshotter v0.0.0
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace snapshotter => ../../..
