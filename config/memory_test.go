package config

import "testing"

func TestMemoryKeysDecode(t *testing.T) {
	cfg, err := Parse("memory.yaml", []byte("memory_limit: 3GiB\nstorage:\n  memory: {size: 1GiB, max_object_size: 64MiB}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryLimit != 3<<30 || cfg.Storage.Memory.MaxObjectSize != 64<<20 {
		t.Fatalf("memory_limit = %s, max_object_size = %s; want 3GiB, 64MiB", cfg.MemoryLimit, cfg.Storage.Memory.MaxObjectSize)
	}
	if d := Default(); d.MemoryLimit != 0 || d.Storage.Memory.MaxObjectSize != 0 {
		t.Fatalf("defaults: memory_limit = %s, max_object_size = %s; want 0 (derived)", d.MemoryLimit, d.Storage.Memory.MaxObjectSize)
	}
}

func TestMemoryObjectLimitWithinTier(t *testing.T) {
	expectParseErrors(t, []struct{ name, yaml, want string }{
		{"entry larger than the tier",
			"storage:\n  memory:\n    size: 16MiB\n    max_object_size: 32MiB\n",
			`bad.yaml:4: storage.memory.max_object_size: must not exceed storage.memory.size (16MiB)`},
	})
}
