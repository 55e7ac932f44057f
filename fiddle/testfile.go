package fiddle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A test file is a fiddle in YAML: the fields of Request, with the
// config inline (config) or in a file (config_file, relative to the test
// file), and assertions on the steps.
type testFile struct {
	Request    `yaml:",inline"`
	ConfigFile string `yaml:"config_file,omitempty"`
}

// Export writes a fiddle as a test file.
func Export(f *Request) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# An Outpost fiddle: run it with \"outpost test FILE\".\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// LoadFile reads a test file. It returns the fiddle and the name config
// errors should carry: the config file's, or the test file's.
func LoadFile(path string) (*Request, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var tf testFile
	if err := dec.Decode(&tf); err != nil && err != io.EOF {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	name := path
	if tf.ConfigFile != "" {
		if tf.Config != "" {
			return nil, "", fmt.Errorf("%s: config and config_file: give one", path)
		}
		name = tf.ConfigFile
		if !filepath.IsAbs(name) {
			name = filepath.Join(filepath.Dir(path), name)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, "", fmt.Errorf("%s: config_file: %w", path, err)
		}
		tf.Config = string(b)
	}
	return &tf.Request, name, nil
}

// RunFile runs a test file and writes its report to w: every step, and
// for a failed assertion the step's decision trail. It reports whether
// every assertion held.
func RunFile(ctx context.Context, path string, w io.Writer) (bool, error) {
	f, name, err := LoadFile(path)
	if err != nil {
		return false, err
	}
	out := run(ctx, name, f)
	if len(out.Errors) > 0 {
		for _, e := range out.Errors {
			fmt.Fprintf(w, "%s: %s\n", path, e.Text)
		}
		return false, nil
	}
	ok := true
	for i, r := range out.Results {
		failed := r.Error != ""
		for _, a := range r.Assertions {
			failed = failed || !a.OK
		}
		verdict := "ok  "
		if failed {
			verdict, ok = "FAIL", false
		}
		outcome := fmt.Sprint(r.Response.Status)
		if r.Purged != nil {
			outcome = fmt.Sprintf("purged %d", *r.Purged)
		}
		fmt.Fprintf(w, "%s %s: requests[%d] %s %s at %s: %s\n", verdict, path, i, r.Request.Method, r.Request.URL, r.At, outcome)
		if !failed {
			continue
		}
		if r.Error != "" {
			fmt.Fprintf(w, "    error: %s\n", r.Error)
		}
		for _, a := range r.Assertions {
			switch {
			case a.Error != "":
				fmt.Fprintf(w, "    assert %s: %s\n", a.Expr, a.Error)
			case !a.OK:
				fmt.Fprintf(w, "    assert %s: false\n", a.Expr)
			}
		}
		fmt.Fprint(w, Trail(&r))
	}
	return ok, nil
}

// Trail prints a result's decisions and origin fetches, one a line.
func Trail(r *Result) string {
	var b strings.Builder
	for _, e := range r.Events {
		d := ""
		if e.Detached {
			d = " (background)"
		}
		fmt.Fprintf(&b, "      %-10s %s%s: %s\n", e.Phase, e.Decision, d, e.Reason)
	}
	for _, f := range r.OriginFetches {
		status := fmt.Sprint(f.Response.Status)
		if f.Response.Fail != "" {
			status = f.Response.Fail
		}
		fmt.Fprintf(&b, "      origin     %s %s %s %s: %s\n", f.Upstream, f.Server, f.Request.Method, f.Request.Path, status)
	}
	return b.String()
}
