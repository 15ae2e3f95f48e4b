package kernel

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
)

// decodeStack reads argc, argv, envp and auxv back from an initial stack.
func decodeStack(t *testing.T, mm *MM, sp uint64) (argv, envv []string, aux map[uint64]uint64) {
	t.Helper()
	word := func(a uint64) uint64 {
		b := make([]byte, 8)
		if err := mm.CopyIn(a, b); err != nil {
			t.Fatalf("read stack word at %#x: %v", a, err)
		}
		return binary.LittleEndian.Uint64(b)
	}
	str := func(a uint64) string {
		s, err := mm.CopyInString(a, 1<<20)
		if err != nil {
			t.Fatalf("read string at %#x: %v", a, err)
		}
		return s
	}
	argc := word(sp)
	p := sp + 8
	for range argc {
		argv = append(argv, str(word(p)))
		p += 8
	}
	if word(p) != 0 {
		t.Fatalf("argv not NULL terminated")
	}
	for p += 8; word(p) != 0; p += 8 {
		envv = append(envv, str(word(p)))
	}
	aux = map[uint64]uint64{}
	for p += 8; ; p += 16 {
		k, v := word(p), word(p+8)
		if k == atNull {
			break
		}
		aux[k] = v
	}
	return argv, envv, aux
}

func TestSetupStack(t *testing.T) {
	tests := []struct {
		name       string
		argv, envv []string
	}{
		{"no env", []string{"/bin/prog"}, nil},
		{"some", []string{"prog", "a", "", "b c"}, []string{"A=1", "PATH=/bin"}},
		{"odd sizes", []string{"x", "yy", "zzz"}, []string{"E=" + strings.Repeat("v", 1001)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mm, _ := newTestMM(t)
			var random [16]byte
			for i := range random {
				random[i] = byte(i + 1)
			}
			sp, err := mm.setupStack(tc.argv, tc.envv, "/bin/prog", random, []auxEntry{{atPagesz, pageSize}, {atEntry, 0x401000}})
			if err != nil {
				t.Fatalf("setupStack: %v", err)
			}
			if sp%16 != 0 {
				t.Errorf("sp = %#x, want 16-byte aligned", sp)
			}
			if sp >= mm.stackTop || sp < mm.stackTop-stackSize {
				t.Errorf("sp = %#x outside the stack [%#x, %#x)", sp, mm.stackTop-stackSize, mm.stackTop)
			}
			argv, envv, aux := decodeStack(t, mm, sp)
			if !slices.Equal(argv, tc.argv) || !slices.Equal(envv, tc.envv) {
				t.Errorf("decoded argv, envv = %q, %q, want %q, %q", argv, envv, tc.argv, tc.envv)
			}
			if aux[atPagesz] != pageSize || aux[atEntry] != 0x401000 {
				t.Errorf("auxv = %v, want AT_PAGESZ=4096 AT_ENTRY=0x401000", aux)
			}
			for key, want := range map[uint64]string{atPlatform: "x86_64", atExecfn: "/bin/prog"} {
				if got, err := mm.CopyInString(aux[key], 100); err != nil || got != want {
					t.Errorf("auxv[%d] -> %q, %v, want %q", key, got, err, want)
				}
			}
			got := make([]byte, 16)
			if err := mm.CopyIn(aux[atRandom], got); err != nil || [16]byte(got) != random {
				t.Errorf("AT_RANDOM bytes = %v, %v, want %v", got, err, random)
			}
			maps := mm.Mappings()
			if len(maps) != 1 || maps[0].Name != "[stack]" || maps[0].End-maps[0].Start != stackSize {
				t.Errorf("mappings = %+v, want one 8 MiB [stack]", maps)
			}
		})
	}
}

func TestSetupStackTooBig(t *testing.T) {
	mm, _ := newTestMM(t)
	huge := []string{strings.Repeat("x", maxArgStrings)}
	if _, err := mm.setupStack(huge, nil, "/p", [16]byte{}, nil); !errors.Is(err, ErrArgListTooLong) {
		t.Errorf("setupStack(huge argv) = %v, want ErrArgListTooLong", err)
	}
}
