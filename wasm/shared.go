package wasm

import (
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"
)

// shared is the key-value store every filter instance of the process
// shares (proxy_get_shared_data, proxy_set_shared_data). Each value has a
// CAS number that changes with every write: a writer that passes the
// number it read fails with CasMismatch if another wrote in between.
var shared struct {
	sync.Mutex
	m   map[string]sharedValue
	cas uint32
}

type sharedValue struct {
	value []byte
	cas   uint32
}

// Bounds of the shared store.
const (
	maxSharedKeys  = 4096
	maxSharedValue = 64 << 10
)

func hostGetSharedData(s *stream, m api.Memory, p []uint64) uint32 {
	key, ok := read(m, p[0], p[1])
	if !ok {
		return statusInvalidMemoryAccess
	}
	shared.Lock()
	v, found := shared.m[string(key)]
	shared.Unlock()
	if !found {
		return statusNotFound
	}
	if st := s.give(m, v.value, p[2], p[3]); st != statusOK {
		return st
	}
	return okIf(m.WriteUint32Le(uint32(p[4]), v.cas))
}

func hostSetSharedData(s *stream, m api.Memory, p []uint64) uint32 {
	key, ok1 := read(m, p[0], p[1])
	value, ok2 := read(m, p[2], p[3])
	if !ok1 || !ok2 {
		return statusInvalidMemoryAccess
	}
	if len(value) > maxSharedValue {
		return statusBadArgument
	}
	cas := uint32(p[4])
	shared.Lock()
	defer shared.Unlock()
	old, found := shared.m[string(key)]
	if cas != 0 && found && old.cas != cas {
		return statusCasMismatch
	}
	if !found && len(shared.m) >= maxSharedKeys {
		return statusBadArgument
	}
	if shared.m == nil {
		shared.m = map[string]sharedValue{}
	}
	shared.cas++
	if shared.cas == 0 {
		shared.cas++ // 0 means "no CAS check"
	}
	shared.m[string(key)] = sharedValue{value: append([]byte(nil), value...), cas: shared.cas}
	return statusOK
}

// metrics are a filter's counters, gauges and histograms
// (proxy_define_metric and the calls on them). A histogram keeps the sum
// and the count of what it records.
type metrics struct {
	mu     sync.Mutex
	byName map[string]uint32
	defs   []metricDef // by id - 1
	values []atomic.Uint64
	counts []atomic.Uint64 // histograms' sample counts
	n      uint32
}

type metricDef struct {
	name string
	typ  uint64 // 0 counter, 1 gauge, 2 histogram
}

const maxMetrics = 256

func hostDefineMetric(s *stream, m api.Memory, p []uint64) uint32 {
	name, ok := read(m, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	if s.f == nil || p[0] > 2 {
		return statusBadArgument
	}
	mt := &s.f.metrics
	mt.mu.Lock()
	defer mt.mu.Unlock()
	id, found := mt.byName[string(name)]
	if !found {
		if mt.n == maxMetrics {
			return statusBadArgument
		}
		if mt.values == nil {
			mt.values, mt.counts = make([]atomic.Uint64, maxMetrics), make([]atomic.Uint64, maxMetrics)
			mt.defs, mt.byName = make([]metricDef, maxMetrics), map[string]uint32{}
		}
		mt.defs[mt.n] = metricDef{name: string(name), typ: p[0]}
		mt.n++
		id = mt.n
		mt.byName[string(name)] = id
	}
	return okIf(m.WriteUint32Le(uint32(p[3]), id))
}

// metric returns the index of metric id, -1 for an unknown id.
func (s *stream) metric(id uint64) int {
	if s.f == nil {
		return -1
	}
	mt := &s.f.metrics
	mt.mu.Lock()
	defer mt.mu.Unlock()
	if id == 0 || id > uint64(mt.n) {
		return -1
	}
	return int(id - 1)
}

func hostIncrementMetric(s *stream, m api.Memory, p []uint64) uint32 {
	k := s.metric(p[0])
	if k < 0 {
		return statusNotFound
	}
	s.f.metrics.values[k].Add(p[1]) // a negative offset wraps: gauges go down
	return statusOK
}

func hostRecordMetric(s *stream, m api.Memory, p []uint64) uint32 {
	k := s.metric(p[0])
	if k < 0 {
		return statusNotFound
	}
	mt := &s.f.metrics
	if mt.defs[k].typ == 2 {
		mt.values[k].Add(p[1])
		mt.counts[k].Add(1)
	} else {
		mt.values[k].Store(p[1])
	}
	return statusOK
}

func hostGetMetric(s *stream, m api.Memory, p []uint64) uint32 {
	k := s.metric(p[0])
	if k < 0 {
		return statusNotFound
	}
	return okIf(m.WriteUint64Le(uint32(p[1]), s.f.metrics.values[k].Load()))
}

// Metric is one metric a filter defined, for /metrics.
type Metric struct {
	Name string
	// Type is "counter", "gauge" or "histogram"; a histogram's Value is
	// the sum of its samples and Count their number.
	Type  string
	Value float64
	Count uint64
}

// Metrics returns the metrics the filter's instances defined.
func (f *Filter) Metrics() []Metric {
	mt := &f.metrics
	mt.mu.Lock()
	defer mt.mu.Unlock()
	out := make([]Metric, 0, mt.n)
	for k := range int(mt.n) {
		m := Metric{Name: mt.defs[k].name, Type: [...]string{"counter", "gauge", "histogram"}[mt.defs[k].typ]}
		v := mt.values[k].Load()
		m.Value = float64(v)
		if m.Type == "gauge" {
			m.Value = float64(int64(v)) // gauges may go below zero
		}
		m.Count = mt.counts[k].Load()
		out = append(out, m)
	}
	return out
}

// Failures returns how many requests the filter failed (or was skipped
// for, when fail_open).
func (f *Filter) Failures() uint64 { return f.failures.Load() }
