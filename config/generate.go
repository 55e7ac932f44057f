package config

// The configuration reference, docs/config.md, is generated from the doc
// comments of this package's structs and the defaults the decoder applies;
// TestConfigReference fails when it is out of date.
//go:generate go test -run TestConfigReference -update .
