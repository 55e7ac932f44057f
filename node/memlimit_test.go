package node

import (
	"runtime/debug"
	"testing"

	"github.com/outpost-edge/outpost/config"
)

func TestMemoryLimitPrecedence(t *testing.T) {
	sized := func(yaml string) *config.Config {
		cfg, err := config.Parse("memlimit.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for _, tt := range []struct {
		name        string
		cfg         *config.Config
		diskObjects int64
		env         int64
		want        int64
		from        string
	}{
		{"derived from the default tier", sized(""), 0, -1, 256<<20 + 32<<20 + 32<<20, "storage sizes"},
		{"derived, with the disk tier's index", sized("storage: {memory: {size: 16MiB}}"), 1000, -1, 16<<20 + 2<<20 + 32<<20 + 1000*128, "storage sizes"},
		{"GOMEMLIMIT over the sizes", sized(""), 0, 1 << 30, 1 << 30, "GOMEMLIMIT"},
		{"memory_limit over GOMEMLIMIT", sized("memory_limit: 2GiB"), 5, 1 << 30, 2 << 30, "memory_limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, from := memoryLimit(tt.cfg, tt.diskObjects, tt.env)
			if got != tt.want || from != tt.from {
				t.Fatalf("memoryLimit = %d from %s, want %d from %s", got, from, tt.want, tt.from)
			}
		})
	}
}

// TestMemoryLimitSetAtStartAndReload checks the runtime's limit itself.
func TestMemoryLimitSetAtStartAndReload(t *testing.T) {
	if envMemoryLimit >= 0 {
		t.Skip("GOMEMLIMIT is set")
	}
	orig := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(orig) })
	const base = "admin: {addr: \"\"}\nlog: {access: \"off\"}\nstorage: {memory: {size: 64MiB}}\n"
	n := startNode(t, base, Options{SetMemoryLimit: true})
	if got, want := debug.SetMemoryLimit(-1), int64(64<<20+8<<20+32<<20); got != want {
		t.Fatalf("memory limit after start = %d, want %d", got, want)
	}
	if err := n.Reload(reloadYAML(t, n, base+"memory_limit: 1GiB\n")); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Fatalf("memory limit after a reload to 1GiB = %d", got)
	}
}
