package node

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
)

func TestParseTokensNamesEachToken(t *testing.T) {
	cases := []struct {
		name, file string
		want       []string // name=token
		err        string
	}{
		{"bare token", "s3cret\n", []string{"default=s3cret"}, ""},
		{"named tokens, comments and blanks", "# ops\nops: a1\n\nci:b2\n", []string{"ops=a1", "ci=b2"}, ""},
		{"colon in a bare token", "ab+/c:d\n", []string{"default=ab+/c:d"}, ""},
		{"CRLF lines", "ops:a1\r\nci:b2\r\n", []string{"ops=a1", "ci=b2"}, ""},
		{"empty file", "\n# nothing\n", nil, "no token"},
		{"empty token", "ops:\n", nil, "line 1: empty token"},
		{"name twice", "ops:a\nops:b\n", nil, "line 2: token name \"ops\" given twice"},
		{"two bare tokens", "a\nb\n", nil, "given twice"},
	}
	for _, tc := range cases {
		creds, err := parseTokens(tc.file)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		var got []string
		for _, c := range creds {
			got = append(got, c.name+"="+fmt.Sprintf("%x", c.digest[:4]))
		}
		for i, w := range tc.want {
			name, tok, _ := strings.Cut(w, "=")
			d := sha256.Sum256([]byte(tok))
			tc.want[i] = name + "=" + fmt.Sprintf("%x", d[:4])
		}
		if err != nil || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
}

func FuzzParseTokens(f *testing.F) {
	for _, s := range []string{"s3cret", "ops:a\nci:b\n", "# c\n\n x \n", "a:b:c", ":x", "ops:\n", "a\na\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file string) {
		creds, err := parseTokens(file)
		if err == nil && len(creds) == 0 {
			t.Fatal("no error and no token: the admin API would be open")
		}
		names := map[string]bool{}
		for _, c := range creds {
			if c.digest == sha256.Sum256(nil) || c.name == "" || names[c.name] {
				t.Fatalf("bad credential %q:%x", c.name, c.digest)
			}
			names[c.name] = true
		}
	})
}
