package wasm

import (
	"sync"

	"github.com/tetratelabs/wazero/api"
)

// queues are the shared queues of the process (proxy_register_shared_queue
// and the calls on them). A queue belongs to the filter that registered
// it, whose root context gets proxy_on_queue_ready when an item is added;
// any filter may resolve it by name and add to it. A filter that
// registers a name already registered (the same module after a reload)
// takes the queue over.
var queues struct {
	sync.Mutex
	byName map[string]uint32
	list   []*queue // by id - 1
}

type queue struct {
	owner *Filter
	items [][]byte
	told  bool // the owner has a proxy_on_queue_ready to run for it
}

// Bounds of the shared queues.
const (
	maxQueues     = 1024
	maxQueueItems = 1024 // then enqueue answers InternalFailure until the owner dequeues
)

const (
	statusEmpty           = 7
	statusInternalFailure = 10
)

// queueName is a queue's key: the VM id (always empty here: every filter
// is its own VM) and the name.
func queueName(vm, name []byte) string { return string(vm) + "\x00" + string(name) }

func hostRegisterSharedQueue(s *stream, m api.Memory, p []uint64) uint32 {
	name, ok := read(m, p[0], p[1])
	if !ok {
		return statusInvalidMemoryAccess
	}
	if s.f == nil {
		return statusBadArgument
	}
	key := queueName(nil, name)
	queues.Lock()
	defer queues.Unlock()
	id, found := queues.byName[key]
	if !found {
		if len(queues.list) >= maxQueues {
			return statusInternalFailure
		}
		if queues.byName == nil {
			queues.byName = map[string]uint32{}
		}
		queues.list = append(queues.list, &queue{})
		id = uint32(len(queues.list))
		queues.byName[key] = id
	}
	q := queues.list[id-1]
	if q.owner != s.f {
		q.owner, q.told = s.f, false
		s.f.readyOnce.Do(func() { go s.f.queueReady() })
		if len(q.items) > 0 {
			q.tell(id) // items left for the filter this one replaces
		}
	}
	return okIf(m.WriteUint32Le(uint32(p[2]), id))
}

func hostResolveSharedQueue(s *stream, m api.Memory, p []uint64) uint32 {
	vm, ok1 := read(m, p[0], p[1])
	name, ok2 := read(m, p[2], p[3])
	if !ok1 || !ok2 {
		return statusInvalidMemoryAccess
	}
	queues.Lock()
	id, found := queues.byName[queueName(vm, name)]
	queues.Unlock()
	if !found {
		return statusNotFound
	}
	return okIf(m.WriteUint32Le(uint32(p[4]), id))
}

// queueAt returns queue id; the caller holds queues' lock.
func queueAt(id uint64) *queue {
	if id == 0 || id > uint64(len(queues.list)) {
		return nil
	}
	return queues.list[id-1]
}

func hostEnqueueSharedQueue(s *stream, m api.Memory, p []uint64) uint32 {
	value, ok := read(m, p[1], p[2])
	if !ok {
		return statusInvalidMemoryAccess
	}
	if len(value) > maxSharedValue {
		return statusBadArgument
	}
	queues.Lock()
	q := queueAt(p[0])
	if q == nil {
		queues.Unlock()
		return statusNotFound
	}
	if len(q.items) >= maxQueueItems {
		queues.Unlock()
		return statusInternalFailure
	}
	q.items = append(q.items, append([]byte(nil), value...))
	q.tell(uint32(p[0]))
	queues.Unlock()
	return statusOK
}

// tell has the owner's root context told that queue id has items, once
// until it runs (it dequeues until the queue is empty). It runs later, on
// an instance of the owner's: the caller may be that instance, in the
// middle of a call. The caller holds queues' lock.
func (q *queue) tell(id uint32) {
	if q.told {
		return
	}
	select {
	case q.owner.ready <- id: // room for every queue: never full
		q.told = true
	default:
	}
}

func hostDequeueSharedQueue(s *stream, m api.Memory, p []uint64) uint32 {
	queues.Lock()
	q := queueAt(p[0])
	if q == nil {
		queues.Unlock()
		return statusNotFound
	}
	if len(q.items) == 0 {
		queues.Unlock()
		return statusEmpty
	}
	item := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	queues.Unlock()
	return s.give(m, item, p[1], p[2])
}

// queueReady calls proxy_on_queue_ready on an instance of the filter for
// each queue of its that got items, until the filter is closed.
func (f *Filter) queueReady() {
	for {
		select {
		case <-f.done:
			return
		case id := <-f.ready:
			queues.Lock()
			queueAt(uint64(id)).told = false
			queues.Unlock()
			i, err := f.get()
			if err != nil {
				f.log.Warn("wasm filter: no instance for proxy_on_queue_ready", "error", err)
				continue
			}
			if _, err := i.call(onQueueReady, rootID, uint64(id)); err != nil {
				f.log.Warn("wasm filter failed in proxy_on_queue_ready", "error", err)
			}
			f.put(i)
		}
	}
}
