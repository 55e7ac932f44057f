package proxy

import "testing"

type noRoutes struct{}

func (noRoutes) Route(*Ctx) error { return nil }

func TestNewRefusesAViaPseudonymThatIsNotOneToken(t *testing.T) {
	for _, via := range []string{"edge\r\nSet-Cookie: s=1", "two words", "a,b"} {
		if _, err := New(noRoutes{}, Options{Via: via}); err == nil {
			t.Errorf("Via %q accepted", via)
		}
	}
	for _, via := range []string{"edge-1", "cache.example:8080", "[::1]:80"} {
		if _, err := New(noRoutes{}, Options{Via: via}); err != nil {
			t.Errorf("Via %q: %v", via, err)
		}
	}
}
