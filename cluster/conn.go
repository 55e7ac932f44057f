package cluster

import (
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// routeUser is the user name embedded servers give each other's routes;
// the password is the cluster secret.
const routeUser = "outpost"

// connect starts the embedded server (or not) and connects to NATS.
func (c *Cluster) connect() error {
	secret, err := c.secret()
	if err != nil {
		return err
	}
	c.peerToken = peerTokenOf(secret)
	opts := []nats.Option{nats.Name("outpost " + c.cfg.Name), nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond), nats.RetryOnFailedConnect(true)}
	target := c.cfg.URL
	if c.cfg.Listen != "" {
		local := rand.Text()
		if c.ns, err = c.embedded(secret, local); err != nil {
			return err
		}
		opts = append(opts, nats.InProcessServer(c.ns), nats.UserInfo(localUser, local))
		target = ""
	} else {
		opts = append(opts, c.clientAuth(secret)...)
	}
	if c.nc, err = nats.Connect(target, opts...); err != nil {
		return fmt.Errorf("cluster: connect to NATS: %w", err)
	}
	if c.cfg.JetStreamDomain != "" {
		c.js, err = jetstream.NewWithDomain(c.nc, c.cfg.JetStreamDomain)
	} else {
		c.js, err = jetstream.New(c.nc)
	}
	if err != nil {
		return fmt.Errorf("cluster: JetStream: %w", err)
	}
	return nil
}

// secret reads the shared secret from cluster.secret_env.
func (c *Cluster) secret() (string, error) {
	if c.cfg.SecretEnv == "" {
		return "", nil
	}
	s := strings.TrimSpace(os.Getenv(c.cfg.SecretEnv))
	if len(s) < 16 {
		return "", fmt.Errorf("cluster: secret_env: $%s holds %d bytes; at least 16 needed", c.cfg.SecretEnv, len(s))
	}
	return s, nil
}

// clientAuth is how the node authenticates to an external NATS.
func (c *Cluster) clientAuth(secret string) []nats.Option {
	var opts []nats.Option
	if c.cfg.CredentialsFile != "" {
		opts = append(opts, nats.UserCredentials(c.cfg.CredentialsFile))
	}
	if secret != "" {
		opts = append(opts, nats.Token(secret))
	}
	if t := c.cfg.TLS; t.CA != "" || t.Cert != "" {
		if t.CA != "" {
			opts = append(opts, nats.RootCAs(t.CA))
		}
		if t.Cert != "" {
			opts = append(opts, nats.ClientCert(t.Cert, t.Key))
		}
		opts = append(opts, nats.Secure())
	}
	return opts
}

// localUser is the user name of the node's own connection to its
// embedded server; the password is random, made at each start.
const localUser = "node"

// embedded starts this node's NATS server: a cluster port for the other
// nodes' servers, JetStream on disk in Dir. The node connects
// in-process; the client port (loopback, an ephemeral port: the server
// does not route without one) takes only the node's own random password.
func (c *Cluster) embedded(secret, local string) (*server.Server, error) {
	host, port, err := c.cfg.ListenAddr()
	if err != nil {
		return nil, fmt.Errorf("cluster.listen: %w", err)
	}
	opts := &server.Options{
		ServerName: c.cfg.Name,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		Username:   localUser,
		Password:   local,
		NoSigs:     true,
		NoLog:      true,
		JetStream:  true,
		StoreDir:   filepath.Join(c.cfg.Dir, "jetstream"),
	}
	if len(c.cfg.Routes) > 0 { // a clustered JetStream needs routes; without, one standalone server
		opts.Cluster = server.ClusterOpts{Name: "outpost-" + c.cfg.Site, Host: host, Port: port}
	}
	if secret != "" {
		opts.Cluster.Username, opts.Cluster.Password = routeUser, secret
	}
	for _, r := range c.cfg.Routes {
		u := &url.URL{Scheme: "nats-route", Host: r}
		if secret != "" {
			u.User = url.UserPassword(routeUser, secret)
		}
		opts.Routes = append(opts.Routes, u)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: NATS server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("cluster: NATS server did not start (cluster port %s)", c.cfg.Listen)
	}
	return ns, nil
}
