package kernel

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
)

// Auxiliary vector keys (linux/auxvec.h).
const (
	atNull         = 0
	atPhdr         = 3
	atPhent        = 4
	atPhnum        = 5
	atPagesz       = 6
	atBase         = 7
	atFlags        = 8
	atEntry        = 9
	atUID          = 11
	atEUID         = 12
	atGID          = 13
	atEGID         = 14
	atPlatform     = 15
	atHwcap        = 16
	atClktck       = 17
	atSecure       = 23
	atRandom       = 25
	atHwcap2       = 26
	atExecfn       = 31
	atSysinfoEhdr  = 33
	atMinSigStkSz  = 51
	maxArgStrings  = stackSize / 4 // bytes of argv, envp and execfn strings, as Linux allows
	stackAlignment = 16
)

// auxEntry is one auxiliary vector entry.
type auxEntry struct{ Key, Val uint64 }

var (
	hostAuxvOnce sync.Once
	hostAuxv     map[uint64]uint64
)

// hostAux returns the sentry's own auxv value for key (0 if absent). The
// application sees the host CPU, so it gets the host's hardware
// capabilities and signal stack minimum.
func hostAux(key uint64) uint64 {
	hostAuxvOnce.Do(func() {
		hostAuxv = map[uint64]uint64{}
		b, err := os.ReadFile("/proc/self/auxv")
		if err != nil {
			return
		}
		for len(b) >= 16 {
			hostAuxv[binary.LittleEndian.Uint64(b)] = binary.LittleEndian.Uint64(b[8:])
			b = b[16:]
		}
	})
	return hostAuxv[key]
}

// stackImage is the initial stack of a new program, built in Go memory and
// written to the top of the stack vma in one copy. It fills mem from the
// end: mem[pos:] is what has been pushed, and mem[len(mem)-1] lies at top-1.
type stackImage struct {
	top uint64
	mem []byte
	pos int
	// args is where the argv and envp strings lie.
	args argArea
}

// push places b just below the current bottom and returns its address.
func (s *stackImage) push(b []byte) uint64 {
	s.pos -= len(b)
	copy(s.mem[s.pos:], b)
	return s.bottom()
}

func (s *stackImage) pushString(str string) uint64 {
	s.pos--
	s.mem[s.pos] = 0
	s.pos -= len(str)
	copy(s.mem[s.pos:], str)
	return s.bottom()
}

// bytes returns what has been pushed.
func (s *stackImage) bytes() []byte { return s.mem[s.pos:] }

// bottom returns the address of the lowest byte pushed so far.
func (s *stackImage) bottom() uint64 { return s.top - uint64(len(s.mem)-s.pos) }

// buildStack lays out the initial stack ending at top as Linux does for a
// new program and returns the image and the initial stack pointer (which
// points at argc). From high to low addresses: an 8-byte end marker, the
// execfn string, envp and argv strings, the platform string, 16 random
// bytes, padding, then auxv, envp, argv pointer arrays and argc.
func buildStack(top uint64, argv, envv []string, execfn string, random [16]byte, aux []auxEntry) (*stackImage, uint64, error) {
	total := len(execfn) + 1
	for _, s := range argv {
		total += len(s) + 1
	}
	for _, s := range envv {
		total += len(s) + 1
	}
	if total > maxArgStrings {
		return nil, 0, fmt.Errorf("arguments and environment take %d bytes, more than %d: %w", total, maxArgStrings, ErrArgListTooLong)
	}
	words := 1 + len(argv) + 1 + len(envv) + 1 + 2*(len(aux)+4)
	s := &stackImage{top: top, mem: make([]byte, 8+total+7+16+stackAlignment+8*words)}
	s.pos = len(s.mem)
	s.push(make([]byte, 8))
	execfnAddr := s.pushString(execfn)
	envStart := execfnAddr
	envAddrs := make([]uint64, len(envv))
	for i := len(envv) - 1; i >= 0; i-- {
		envAddrs[i] = s.pushString(envv[i])
		envStart = envAddrs[i]
	}
	argAddrs := make([]uint64, len(argv))
	for i := len(argv) - 1; i >= 0; i-- {
		argAddrs[i] = s.pushString(argv[i])
	}
	s.args = argArea{Start: s.bottom(), End: envStart, EnvEnd: execfnAddr}
	platformAddr := s.pushString("x86_64")
	randomAddr := s.push(random[:])

	aux = append(aux,
		auxEntry{atPlatform, platformAddr},
		auxEntry{atRandom, randomAddr},
		auxEntry{atExecfn, execfnAddr},
		auxEntry{atNull, 0},
	)
	words = 1 + len(argv) + 1 + len(envv) + 1 + 2*len(aux)
	tableSize := uint64(words * 8)
	sp := (s.bottom() - tableSize) &^ (stackAlignment - 1)
	// Pad so that the table ends where the strings begin.
	s.push(make([]byte, s.bottom()-sp-tableSize))
	table := make([]byte, 0, tableSize)
	le := binary.LittleEndian
	table = le.AppendUint64(table, uint64(len(argv)))
	for _, a := range argAddrs {
		table = le.AppendUint64(table, a)
	}
	table = le.AppendUint64(table, 0)
	for _, a := range envAddrs {
		table = le.AppendUint64(table, a)
	}
	table = le.AppendUint64(table, 0)
	for _, e := range aux {
		table = le.AppendUint64(table, e.Key)
		table = le.AppendUint64(table, e.Val)
	}
	if got := s.push(table); got != sp {
		return nil, 0, fmt.Errorf("stack layout: table at %#x, want %#x", got, sp)
	}
	return s, sp, nil
}

// setupStack maps the stack vma at the top of mm and writes the initial
// stack into it. It returns the initial stack pointer.
func (mm *MM) setupStack(argv, envv []string, execfn string, random [16]byte, aux []auxEntry) (uint64, error) {
	img, sp, err := buildStack(mm.stackTop, argv, envv, execfn, random, aux)
	if err != nil {
		return 0, err
	}
	if uint64(len(img.bytes())) > stackSize/4 {
		return 0, fmt.Errorf("initial stack of %d bytes: %w", len(img.bytes()), ErrArgListTooLong)
	}
	_, err = mm.MMap(MMapOpts{Addr: mm.stackTop - stackSize, Length: stackSize, Perms: permRead | permWrite, Private: true, NoReplace: true, Name: "[stack]"})
	if err != nil {
		return 0, fmt.Errorf("map stack: %w", err)
	}
	if err := mm.writeForce(img.bottom(), img.bytes()); err != nil {
		return 0, fmt.Errorf("write initial stack: %w", err)
	}
	mm.args = img.args
	return sp, nil
}
