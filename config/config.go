// Package config turns Outpost's declarative YAML file into typed, validated
// structs. It builds nothing that runs: the server package reads a *Config
// and starts listeners, pools and caches from it.
//
// Loading goes through four steps, the same for startup, "outpost validate",
// reload and the fiddle:
//
//  1. Decode strictly. Every struct starts from its defaults and the file's
//     keys are laid on top, so an absent key keeps its default while an
//     explicit 0, false or "" is kept as written. An unknown key, a value of
//     the wrong type or a duplicate key is an error naming it.
//  2. Provision derives what the file leaves implicit: upstream and route
//     names, lowercased hosts, paths resolved against the config file's
//     directory, and compiled forms of what is expensive to redo per request
//     (path regexps and globs, retry conditions, condition expressions,
//     see package config/expr). CIDRs, sizes, durations
//     and keys are decoded straight into netip.Prefix, Size, time.Duration
//     and KeySource.
//  3. Validate checks references (route -> upstream), ranges, duplicate
//     names, listener address conflicts and that TLS files exist.
//  4. All problems are returned together, sorted by line, as errors.Join of
//     *Error values that print "file:line: key: reason".
//
// Provision opens nothing (it only checks that named files exist), so a
// failed load needs no cleanup. Diff lists what a reload changes.
//
// Durations are Go durations ("1.5s", "10m") or days ("1d", "365d"); sizes
// are bytes or carry a unit ("64KiB", "256MiB", "10MB"). A YAML merge key
// ("<<: *defaults") may be used to share settings between entries; top-level
// keys starting with "x-" are ignored, as a place to define the anchors.
//
// The YAML is parsed by go.yaml.in/yaml/v3 into a node tree, and the
// decoder lays the nodes onto the structs itself rather than calling the
// library's strict decoding (Decoder.KnownFields), which cannot serve here:
// its errors give a line and a Go type name but not the key path
// (routes[2].cache.default_ttl) nor a suggestion, errors from custom
// unmarshalers carry no line at all, it accepts YAML 1.1 booleans ("yes")
// into a bool, list elements and map values would start from zero rather
// than their defaults, and strictness is lost below any type with its own
// UnmarshalYAML, which is what giving them defaults would take.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/outpost-edge/outpost/httphead"
	"io"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is a whole Outpost configuration. Build one with Load, Parse or
// Default; after changing a Config in Go, call Provision before use. Parts
// built in Go should start from NewListener, NewUpstream and NewRoute,
// which hold the same defaults as an absent key in the file: a zero
// Upstream, for one, would pool no connections and retry nothing.
//
// A provisioned Config is read-only: share it between goroutines freely,
// and build a new one for a reload rather than changing it in place.
type Config struct {
	// Listeners are the public addresses that accept client traffic.
	// Default (also when nil): one plain HTTP listener on 127.0.0.1:8080.
	// An empty list is an error.
	Listeners []Listener `yaml:"listeners"`
	// Admin is the authenticated admin API (purge, reload, status).
	Admin Admin `yaml:"admin"`
	// Timeouts apply to client connections on every listener.
	Timeouts Timeouts `yaml:"timeouts"`
	// Limits bound what one client connection or request may use.
	Limits Limits `yaml:"limits"`
	// Upstreams are the origins, by name. Default: none.
	Upstreams map[string]*Upstream `yaml:"upstreams"`
	// Routes are tried in order; the first that matches a request handles
	// it. Default: none, so every request gets 404.
	Routes []Route `yaml:"routes"`
	// Storage sizes the cache tiers.
	Storage Storage `yaml:"storage"`
	// MemoryLimit is the Go runtime's soft memory limit for the whole
	// process (runtime/debug.SetMemoryLimit): the garbage collector runs
	// as often as it must to keep the process's memory under it. Default:
	// 0, derived: GOMEMLIMIT when that environment variable is set, else
	// storage.memory.size plus an eighth, plus 32MiB for the rest of the
	// process, plus 128 bytes for each object indexed by the disk tier.
	// Set it on a node with tens of thousands of connections or other
	// work in the same process. A reload applies it.
	MemoryLimit Size `yaml:"memory_limit"`
	// Purge controls invalidation by HTTP PURGE and surrogate keys.
	Purge Purge `yaml:"purge"`
	// Log controls the access log and the process log.
	Log Log `yaml:"log"`
	// Debug controls per-request decision traces.
	Debug Debug `yaml:"debug"`
	// Proxy controls what of a request is forwarded upstream.
	Proxy Proxy `yaml:"proxy"`
	// Protection holds named rate limits, bot rules and the challenge.
	Protection Protection `yaml:"protection"`
	// OTel exports request spans over OTLP.
	OTel OTel `yaml:"otel"`
	// Wasm declares Proxy-Wasm filters and the ones every route runs.
	Wasm Wasm `yaml:"wasm"`
	// Cluster joins the node to others over NATS. Default: off.
	Cluster Cluster `yaml:"cluster"`

	// File is the path the config was read from; "" when built in Go.
	// Relative paths in the config are resolved against its directory.
	File string `yaml:"-"`

	lines map[string]int // dotted key -> line in File, filled by the decoder
}

// Storage sizes the cache tiers. An object is looked up in memory, then on
// disk.
type Storage struct {
	Memory MemoryStorage `yaml:"memory"` // first tier; on by default
	Disk   DiskStorage   `yaml:"disk"`   // second tier; off by default
}

func (s *Storage) setDefaults() { s.Memory.Size = 256 << 20 }

// MemoryStorage is the in-memory cache tier.
type MemoryStorage struct {
	// Size is the most bytes of objects held in memory, counting what
	// each object really takes of the heap (its key, metadata and body as
	// allocated, plus about 450 bytes of index and eviction state).
	// Default: 256MiB; 0 turns the memory tier off.
	Size Size `yaml:"size"`
	// MaxObjectSize is the largest single entry the tier holds, in bytes;
	// a bigger body is still served (and kept on disk if there is a disk
	// tier). Default: 0, an eighth of Size. At most Size.
	MaxObjectSize Size `yaml:"max_object_size"`
}

// DiskStorage is the persistent cache tier.
type DiskStorage struct {
	// Path is the directory holding the tier, created if missing.
	// Default: "", the disk tier is off.
	Path string `yaml:"path"`
	// Size is the most bytes the tier takes on disk, as du counts them:
	// object files in whole blocks plus their share of directory and index
	// blocks (kept within 5%). Required (positive) when Path is set.
	Size Size `yaml:"size"`
	// Sync fsyncs each object file, its directory and its journal record
	// before the object is served, and deletes likewise, so the tier
	// survives a power failure. Default: false, as nginx's proxy cache and
	// Traffic Server do: a killed process loses nothing, a power failure
	// may lose recent objects (never serve torn ones with Verify on).
	Sync bool `yaml:"sync"`
	// Verify checks each object's body checksum (CRC-32C) on its first
	// read after a restart, dropping it on a mismatch. Default: false: the
	// header, key and length are checked on every read, bodies are
	// trusted to the filesystem. Turn it on after an unclean power loss
	// without Sync; a big object's first hit then waits for its whole body
	// to be read.
	Verify bool `yaml:"verify"`
}

// Purge controls invalidation.
type Purge struct {
	// AllowMethodFrom are the networks allowed to send the HTTP PURGE
	// method on public listeners; a single address means a /32 or /128.
	// Default: empty, PURGE is refused there (the admin API still purges).
	AllowMethodFrom []netip.Prefix `yaml:"allow_method_from"`
	// SurrogateKeyHeader is the response header listing an object's
	// surrogate keys, separated by spaces. Default: "Surrogate-Key";
	// "" turns purge by surrogate key off.
	SurrogateKeyHeader string `yaml:"surrogate_key_header"`
	// StripSurrogateKey removes that header before responding to clients.
	// Default: true.
	StripSurrogateKey bool `yaml:"strip_surrogate_key"`
}

func (p *Purge) setDefaults() {
	*p = Purge{SurrogateKeyHeader: "Surrogate-Key", StripSurrogateKey: true}
}

// Log controls logging. A reload applies every key: the access log is
// reopened and the process log's level and format change in place.
type Log struct {
	// Access is where the access log (one JSON object a line) goes:
	// stdout, stderr, off, or a file path (relative to the config file).
	// Default (also when empty): stdout.
	Access string `yaml:"access"`
	// Format is the process log format: json or text (key=value). The
	// process log goes to stderr. Default (also when empty): json.
	Format string `yaml:"format"`
	// Level is the least severe process log level written: debug, info,
	// warn or error. Default (also when empty): info.
	Level string `yaml:"level"`
}

func (l *Log) setDefaults() { *l = Log{Access: "stdout", Format: "json", Level: "info"} }

// Debug controls per-request decision traces. A trace shows route names,
// cache keys, upstream addresses and protection decisions, so it is
// answered only to clients in TraceFrom or to requests carrying the token.
type Debug struct {
	// TraceHeader is the request header that asks for the request's
	// trace in the response. Default: "X-Outpost-Trace"; "" turns
	// traces in responses off. It is never forwarded upstream.
	TraceHeader string `yaml:"trace_header"`
	// TraceFrom are the networks whose clients get a trace by asking;
	// a single address means a /32 or /128. A peer that is one of the
	// listener's trusted_proxies never qualifies by address: its requests
	// stand for clients behind it. Default: loopback only
	// [127.0.0.0/8, ::1]; [] leaves only the token.
	TraceFrom []netip.Prefix `yaml:"trace_from"`
	// TraceTokenFile is a file holding a token (16 bytes or more) that,
	// sent as the value of TraceHeader, gets a trace from any client; it
	// is compared by digest, in constant time. Default: "", no token.
	TraceTokenFile string `yaml:"trace_token_file"`
	// TraceTokenEnv names an environment variable holding the token
	// instead. Default: "". At most one of the two may be set.
	TraceTokenEnv string `yaml:"trace_token_env"`
}

func (d *Debug) setDefaults() {
	d.TraceHeader = "X-Outpost-Trace"
	d.TraceFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// minTraceToken is the shortest trace token accepted: it guards what the
// trace reveals to anyone on the internet who guesses it.
const minTraceToken = 16

// TraceToken reads the trace token from TraceTokenFile or TraceTokenEnv,
// trimming white space; "" when neither is set.
func (d *Debug) TraceToken() (string, error) {
	var token string
	switch {
	case d.TraceTokenFile != "":
		b, err := os.ReadFile(d.TraceTokenFile)
		if err != nil {
			return "", fmt.Errorf("config: trace token: %w", err)
		}
		token = string(bytes.TrimSpace(b))
	case d.TraceTokenEnv != "":
		token = strings.TrimSpace(os.Getenv(d.TraceTokenEnv))
	default:
		return "", nil
	}
	if len(token) < minTraceToken {
		return "", fmt.Errorf("config: trace token is %d bytes; at least %d needed", len(token), minTraceToken)
	}
	return token, nil
}

// Proxy controls what of a client's request reaches the upstream.
type Proxy struct {
	// StripRequestHeaders are request fields removed before a request is
	// sent upstream, besides the default list of fields an origin may act
	// on while the cache key ignores them (see proxy.DefaultStripRequest:
	// X-Original-URL, X-Rewrite-URL, X-HTTP-Method-Override, X-Host and
	// the like). Default: none.
	StripRequestHeaders []string `yaml:"strip_request_headers"`
	// KeepRequestHeaders are fields of that default list to forward after
	// all, for an origin that needs one and a cache key that holds it.
	// Default: none.
	KeepRequestHeaders []string `yaml:"keep_request_headers"`
	// UpgradeAllow are the protocols a client may switch to through the
	// proxy (the Upgrade field, RFC 9110 section 7.8). A request asking
	// for any other is served as a plain request, and an origin that
	// switches to a protocol not asked for gets a 502. h2c is never
	// allowed. Default: [websocket]; [] allows none.
	UpgradeAllow []string `yaml:"upgrade_allow"`
	// MergeSlashes merges empty path segments ("/a//b" is "/a/b") in the
	// canonical path that routing, rules, the cache key and purges use.
	// Turn it off for origins where they name different objects (object
	// stores). Default: true.
	MergeSlashes bool `yaml:"merge_slashes"`
	// EncodedSlash is what "%2F" in a path means: keep (data inside a
	// segment), decode (a separator, for origins that decode it) or
	// reject (400). Default: keep.
	EncodedSlash string `yaml:"encoded_slash"`
	// ForwardPath is the request-target sent upstream: normalized (the
	// canonical path and the query as sent, so the origin sees the path
	// the rules saw) or as_sent. Default: normalized.
	ForwardPath string `yaml:"forward_path"`
}

func (p *Proxy) setDefaults() {
	p.UpgradeAllow = []string{"websocket"}
	p.MergeSlashes, p.EncodedSlash, p.ForwardPath = true, "keep", "normalized"
}

// Paths returns the path policy of the canonical request.
func (p *Proxy) Paths() httphead.PathPolicy {
	pol := httphead.PathPolicy{KeepSlashes: !p.MergeSlashes, ForwardAsSent: p.ForwardPath == "as_sent"}
	switch p.EncodedSlash {
	case "decode":
		pol.EncodedSlash = httphead.SlashDecode
	case "reject":
		pol.EncodedSlash = httphead.SlashReject
	}
	return pol
}

// Default returns the configuration used when the file is empty: one HTTP
// listener on 127.0.0.1:8080, the admin API on 127.0.0.1:9090, no upstreams
// and no routes.
func Default() *Config {
	c := &Config{}
	c.setDefaults()
	if err := c.Provision(); err != nil {
		panic("config: defaults do not validate: " + err.Error())
	}
	return c
}

// NewListener returns a Listener holding the defaults.
func NewListener() Listener {
	var l Listener
	l.setDefaults()
	return l
}

// NewUpstream returns an Upstream holding the defaults, with no servers.
func NewUpstream() *Upstream {
	u := &Upstream{}
	u.setDefaults()
	return u
}

// NewRoute returns a Route holding the defaults, matching every request.
func NewRoute() Route {
	var r Route
	r.setDefaults()
	return r
}

func (c *Config) setDefaults() {
	c.Listeners = []Listener{NewListener()}
	c.Admin.setDefaults()
	c.Timeouts.setDefaults()
	c.Limits.setDefaults()
	c.Storage.setDefaults()
	c.Purge.setDefaults()
	c.Log.setDefaults()
	c.Debug.setDefaults()
	c.Proxy.setDefaults()
	c.Protection.setDefaults()
	c.OTel.setDefaults()
	c.Cluster.setDefaults()
	c.Wasm.Response = WasmAfterStore
}

// Load reads, decodes, provisions and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes, provisions and validates a config whose text is data;
// filename is used in error messages and to resolve relative paths. An
// empty document gives the Default config. On failure the error is
// errors.Join of every *Error found, sorted by line.
func Parse(filename string, data []byte) (*Config, error) {
	c := &Config{File: filename}
	c.setDefaults()
	d := &decoder{file: filename, lines: map[string]int{}, budget: nodeBudget}
	root, err := parseYAML(filename, data)
	if err != nil {
		return nil, err
	}
	if root != nil {
		d.document(root, c)
	}
	c.lines = d.lines
	// Provision and validate even after decode errors, so one run reports
	// every problem; a key that failed to decode keeps its default.
	errs := append(d.errs, c.provision()...)
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return c, nil
}

// parseYAML reads the single YAML document in data. It returns nil for an
// empty document.
func parseYAML(filename string, data []byte) (root *yaml.Node, err error) {
	defer func() {
		// The YAML parser is third-party code reading untrusted text; a panic
		// there must become a config error, not a crash.
		if r := recover(); r != nil {
			root, err = nil, joinErrors([]*Error{{File: filename, Reason: fmt.Sprintf("YAML parser failed: %v", r)}})
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, joinErrors([]*Error{yamlError(filename, err)})
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, joinErrors([]*Error{yamlError(filename, err)})
	default:
		return nil, joinErrors([]*Error{{File: filename, Line: extra.Line, Reason: "only one YAML document is allowed"}})
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a YAML syntax error into an *Error with its line.
func yamlError(filename string, err error) *Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: filename, Line: yamlErrorLine(line, m[2]), Reason: m[2]}
	}
	return &Error{File: filename, Reason: "bad YAML: " + msg}
}

// Provision fills the derived fields (names, resolved paths, compiled
// patterns) and validates the config. Parse and Load call it; call it again
// after building or changing a Config in Go. It may be called repeatedly.
func (c *Config) Provision() error {
	if errs := c.provision(); len(errs) > 0 {
		return joinErrors(errs)
	}
	return nil
}

func (c *Config) provision() []*Error {
	ch := &checker{c: c}
	ch.provision()
	ch.validate()
	return ch.errs
}

// Fingerprint identifies the config's content: the SHA-256, in hex, of its
// normalised YAML form (defaults filled, keys sorted, paths resolved). Two
// configs with the same fingerprint behave the same; it is meant for reload
// logs and for skipping a reload that changes nothing.
func (c *Config) Fingerprint() string {
	out, err := yaml.Marshal(c)
	if err != nil {
		// Every field type here marshals; failing means a programming error.
		panic("config: cannot marshal config: " + err.Error())
	}
	sum := sha256.Sum256(out)
	return hex.EncodeToString(sum[:])
}

// joinErrors sorts errs by line, keeping discovery order within a line,
// and joins them.
func joinErrors(errs []*Error) error {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}
