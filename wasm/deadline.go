package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The time limit of a callback is enforced inside the module, without
// wazero's WithCloseOnContextDone: that option starts a goroutine and
// makes a channel for every call into the module (about 1 µs each, six
// calls an empty filter's request), while what stops a runaway loop is
// only a check at each loop header. addDeadline rewrites the module so
// that every loop starts with
//
//	global.get $countdown
//	if
//	  global.get $countdown, i32.const 1, i32.sub, global.set $countdown
//	else
//	  i32.const 4096, global.set $countdown
//	  i32.const 0, memory.grow, drop
//	  global.get $deadline
//	  if unreachable end
//	end
//
// on two mutable i32 globals it adds, the first exported as
// deadlineExport. Every 4096 iterations the loop leaves the compiled code
// for Go (memory.grow is a call into wazero), which is what lets the Go
// scheduler preempt the goroutine (compiled code alone cannot be, and a
// garbage collection waiting for it would stop the process), and checks
// the deadline: the instance's timer sets it to 1 when a callback is over
// its time, and the code traps. wazero's own check leaves for Go at every
// iteration. Like wazero's, it does not stop a deep but finite recursion
// without loops, which the stack limit bounds.
//
// A module the rewriter does not understand (an instruction of a proposal
// wazero may accept but it does not know, or no memory) keeps wazero's
// per-call watchdog: the filter is compiled with WithCloseOnContextDone
// instead.
const deadlineExport = "outpost.deadline"

// Section ids of the binary format (WebAssembly core 2.0, 5.5).
const (
	secImport = 2
	secGlobal = 6
	secExport = 7
	secCode   = 10
)

// addDeadline returns code with the deadline check at every loop header.
func addDeadline(code []byte) ([]byte, error) {
	if len(code) < 8 || string(code[:4]) != "\x00asm" || binary.LittleEndian.Uint32(code[4:8]) != 1 {
		return nil, errors.New("not a WebAssembly 1.0 binary module")
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	r := &reader{b: code[8:]}
	for r.more() {
		id := r.byte()
		body := r.bytes(r.u32())
		if r.err != nil {
			return nil, r.err
		}
		secs = append(secs, section{id, body})
	}
	// The new global's index is after the imported and defined ones.
	var imported, defined uint32
	for _, s := range secs {
		var err error
		switch s.id {
		case secImport:
			imported, err = importedGlobals(s.body)
		case secGlobal:
			defined, err = (&reader{b: s.body}).count()
		}
		if err != nil {
			return nil, err
		}
	}
	g := imported + defined
	out := append([]byte(nil), code[:8]...)
	added := map[byte]bool{}
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
		added[id] = true
	}
	// newGlobal and newExport are the sections to write when the module
	// has none: a global section goes before the exports, an export
	// section before the start, element, data count and code sections.
	newGlobal := []byte{2,
		0x7f, 1, 0x41, 0, 0x0b, // deadline: (mut i32) = i32.const 0
		0x7f, 1, 0x41, 0x80, 0x20, 0x0b} // countdown: (mut i32) = i32.const 4096
	newExport := appendExport([]byte{1}, g)
	for _, s := range secs {
		var err error
		body := s.body
		switch {
		case s.id == secGlobal:
			body, err = appendToVec(body, 2, newGlobal[1:])
		case s.id == secExport:
			body, err = appendToVec(body, 1, newExport[1:])
		case s.id == secCode:
			body, err = instrumentCode(body, g)
		}
		if err != nil {
			return nil, err
		}
		if s.id != 0 && !added[secGlobal] && order(s.id) > order(secGlobal) {
			emit(secGlobal, newGlobal)
		}
		if s.id != 0 && !added[secExport] && order(s.id) > order(secExport) {
			emit(secExport, newExport)
		}
		emit(s.id, body)
	}
	if !added[secCode] {
		return nil, errors.New("module has no code")
	}
	return out, nil
}

// order is the place of a section id in a module (5.5.2): the data count
// section (12) comes before the code, the tag section (13) before the
// globals.
func order(id byte) int {
	switch id {
	case 12:
		return 9 // between element (9) and code (10)
	case 13:
		return 5 // after memory (5), before global (6)
	}
	return int(id)
}

// appendToVec appends n encoded entries to a vector.
func appendToVec(vec []byte, n uint32, entries []byte) ([]byte, error) {
	r := &reader{b: vec}
	count, err := r.count()
	if err != nil {
		return nil, err
	}
	out := binary.AppendUvarint(nil, uint64(count)+uint64(n))
	out = append(out, r.b[r.off:]...)
	return append(out, entries...), nil
}

// appendExport appends the export of global g as deadlineExport.
func appendExport(dst []byte, g uint32) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(deadlineExport)))
	dst = append(dst, deadlineExport...)
	dst = append(dst, 3) // global
	return binary.AppendUvarint(dst, uint64(g))
}

// importedGlobals counts the globals an import section imports.
func importedGlobals(b []byte) (uint32, error) {
	r := &reader{b: b}
	n, err := r.count()
	globals := uint32(0)
	for range n {
		r.bytes(r.u32()) // module
		r.bytes(r.u32()) // name
		switch kind := r.byte(); kind {
		case 0: // function: type index
			r.u32()
		case 1: // table: reference type, limits
			r.valType()
			r.limits()
		case 2: // memory
			r.limits()
		case 3: // global: value type, mutability
			r.valType()
			r.byte()
			globals++
		case 4: // tag: attribute, type index
			r.byte()
			r.u32()
		default:
			r.fail("import kind %d", kind)
		}
	}
	if err == nil {
		err = r.err
	}
	return globals, err
}

// instrumentCode adds the check to each loop of each function body of a
// code section.
func instrumentCode(b []byte, g uint32) ([]byte, error) {
	r := &reader{b: b}
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	deadline := binary.AppendUvarint(nil, uint64(g))
	countdown := binary.AppendUvarint(nil, uint64(g)+1)
	var check []byte
	check = append(append(append(check, 0x23), countdown...), 0x04, 0x40) // global.get $countdown, if
	check = append(append(append(check, 0x23), countdown...), 0x41, 1, 0x6b, 0x24)
	check = append(append(check, countdown...), 0x05) // i32.const 1, i32.sub, global.set $countdown, else
	check = append(append(append(check, 0x41, 0x80, 0x20, 0x24), countdown...),
		0x41, 0, 0x40, 0, 0x1a) // i32.const 4096, global.set $countdown, memory.grow 0, drop
	check = append(append(append(check, 0x23), deadline...),
		0x04, 0x40, 0x00, 0x0b, 0x0b) // global.get $deadline, if unreachable end, end
	out := binary.AppendUvarint(make([]byte, 0, len(b)+len(b)/16), uint64(n))
	var fn []byte
	for range n {
		body := r.bytes(r.u32())
		if r.err != nil {
			return nil, r.err
		}
		if fn, err = instrumentBody(fn[:0], body, check); err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, uint64(len(fn)))
		out = append(out, fn...)
	}
	return out, nil
}

// instrumentBody copies one function body to dst with check after each
// loop's block type.
func instrumentBody(dst, body, check []byte) ([]byte, error) {
	r := &reader{b: body}
	locals, _ := r.count()
	for range locals {
		r.u32()
		r.valType()
	}
	last := 0
	for r.more() && r.err == nil {
		if r.instruction() {
			dst = append(append(dst, body[last:r.off]...), check...)
			last = r.off
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return append(dst, body[last:]...), nil
}

// reader decodes the binary format; the first error sticks.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) more() bool { return r.err == nil && r.off < len(r.b) }

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("offset %d: "+format, append([]any{r.off}, args...)...)
	}
}

func (r *reader) byte() byte {
	if r.off >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) bytes(n uint32) []byte {
	if r.err != nil || uint64(n) > uint64(len(r.b)-r.off) {
		r.fail("unexpected end")
		return nil
	}
	b := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return b
}

// u32 reads an unsigned LEB128 number; sleb skips a signed one.
func (r *reader) u32() uint32 {
	v, n := binary.Uvarint(r.b[min(r.off, len(r.b)):])
	if n <= 0 || v > 1<<32-1 {
		r.fail("bad integer")
		return 0
	}
	r.off += n
	return uint32(v)
}

func (r *reader) sleb() {
	for k := 0; k < 10; k++ {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	r.fail("bad integer")
}

func (r *reader) count() (uint32, error) {
	n := r.u32()
	return n, r.err
}

// valType skips a value type: one byte, or (ref null? ht) of the typed
// function references proposal.
func (r *reader) valType() {
	switch c := r.byte(); c {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69: // i32 i64 f32 f64 v128 funcref externref exnref
	case 0x63, 0x64: // ref null ht, ref ht
		r.sleb()
	default:
		r.fail("value type 0x%x", c)
	}
}

func (r *reader) blockType() {
	if r.off < len(r.b) && r.b[r.off] == 0x40 {
		r.off++
		return
	}
	if r.off < len(r.b) && r.b[r.off]&0xc0 == 0x40 { // a value type: a one-byte negative s33
		r.valType()
		return
	}
	r.sleb() // a type index
}

func (r *reader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
	if flags > 3 {
		r.fail("limits 0x%x", flags)
	}
}

func (r *reader) memarg() {
	r.u32() // alignment
	r.u32() // offset
}

// instruction skips one instruction and its immediates; it reports a loop
// (the reader is then past its block type).
func (r *reader) instruction() (loop bool) {
	switch op := r.byte(); {
	case op == 0x03: // loop
		r.blockType()
		return true
	case op == 0x02, op == 0x04, op == 0x06: // block, if, try
		r.blockType()
	case op == 0x1f: // try_table: block type, catch clauses
		r.blockType()
		n := r.u32()
		for range n {
			if kind := r.byte(); kind < 2 {
				r.u32() // tag
			} else if kind > 3 {
				r.fail("catch kind %d", kind)
			}
			r.u32() // label
		}
	case op == 0x0e: // br_table
		n := r.u32()
		for range n + 1 {
			r.u32()
		}
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect: type, table
		r.u32()
		r.u32()
	case op == 0x07, op == 0x08, op == 0x09, op == 0x0c, op == 0x0d, op == 0x10, op == 0x12,
		op == 0x14, op == 0x15, op == 0x18, op == 0xd2, op == 0xd5, op == 0xd6,
		op >= 0x20 && op <= 0x26: // one index: tag, label, function, type, local, global or table
		r.u32()
	case op == 0x1c: // select t*
		n := r.u32()
		for range n {
			r.valType()
		}
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x3f, op == 0x40: // memory.size, memory.grow: memory index
		r.u32()
	case op == 0x41, op == 0x42: // i32.const, i64.const
		r.sleb()
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xd0: // ref.null: heap type
		r.sleb()
	case op == 0xfc:
		r.misc()
	case op == 0xfd:
		r.vector()
	case op == 0xfe:
		if r.u32() == 0x03 { // atomic.fence
			r.byte()
		} else {
			r.memarg()
		}
	case op <= 0x01, op == 0x05, op == 0x0a, op == 0x0b, op == 0x0f, op == 0x19, op == 0x1a, op == 0x1b,
		op >= 0x45 && op <= 0xc4, op == 0xd1, op == 0xd3, op == 0xd4:
		// no immediates
	default:
		r.fail("opcode 0x%x", op)
	}
	return false
}

// misc skips the immediates of a 0xFC instruction (saturating
// truncations, bulk memory, tables).
func (r *reader) misc() {
	switch sub := r.u32(); {
	case sub <= 7: // trunc_sat
	case sub == 8: // memory.init: data, memory
		r.u32()
		r.u32()
	case sub == 10, sub == 12, sub == 14: // memory.copy, table.init, table.copy: two indexes
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17: // one index
		r.u32()
	default:
		r.fail("opcode 0xfc %d", sub)
	}
}

// vector skips the immediates of a 0xFD (SIMD) instruction.
func (r *reader) vector() {
	switch sub := r.u32(); {
	case sub <= 0x0b, sub == 0x5c, sub == 0x5d: // loads and stores
		r.memarg()
	case sub == 0x0c, sub == 0x0d: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 0x15 && sub <= 0x22: // extract and replace lane
		r.byte()
	case sub >= 0x54 && sub <= 0x5b: // load and store lane
		r.memarg()
		r.byte()
	case sub <= 0x113:
		// no immediates
	default:
		r.fail("opcode 0xfd %d", sub)
	}
}
