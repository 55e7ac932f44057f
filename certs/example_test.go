package certs_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/outpost-edge/outpost/certs"
)

// Serve HTTPS with certificates that reload when cert-manager (or certbot)
// rewrites the files.
func ExampleServerConfig() {
	ctx := context.Background()
	store, err := certs.New(ctx, certs.Config{
		Pairs: []certs.Pair{
			{CertFile: "/etc/outpost/tls/example.org.crt", KeyFile: "/etc/outpost/tls/example.org.key"},
			{CertFile: "/etc/outpost/tls/wildcard.crt", KeyFile: "/etc/outpost/tls/wildcard.key"},
		},
		PollInterval: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	srv := &http.Server{
		Addr:              ":443",
		TLSConfig:         certs.ServerConfig(store, certs.ServerOptions{}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}
