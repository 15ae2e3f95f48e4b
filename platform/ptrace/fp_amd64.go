//go:build linux && amd64

package ptrace

import "encoding/binary"

// Layout of the XSAVE area (standard format, as PTRACE_GETREGSET
// NT_X86_XSTATE returns it): the 512-byte FXSAVE legacy area, then the
// 64-byte XSAVE header (xstate_bv first), then the extended components.
const (
	fxsaveMXCSR       = 24
	fxsaveMXCSRMask   = 28
	fxsaveXMMOffset   = 160     // xmm0; xmm1 follows 16 bytes later
	fxswXFeaturesOff  = 464 + 8 // xstate_fx_sw_bytes.xfeatures (software-reserved area)
	xsaveHeaderOffset = 512
)

// adaptFP converts an XSAVE area of another size (another host) to this
// host's: the legacy area and header are copied, components this host does
// not have are dropped from xstate_bv.
func (p *Platform) adaptFP(fp []byte) []byte {
	out := append([]byte(nil), p.initFP...)
	copy(out, fp)
	if len(out) >= xsaveHeaderOffset+8 {
		supported := binary.LittleEndian.Uint64(p.initFP[fxswXFeaturesOff:])
		if supported == 0 {
			supported = 3 // x87 and SSE
		}
		bv := binary.LittleEndian.Uint64(out[xsaveHeaderOffset:])
		binary.LittleEndian.PutUint64(out[xsaveHeaderOffset:], bv&supported)
		// xcomp_bv must be 0 in the standard format ptrace uses.
		binary.LittleEndian.PutUint64(out[xsaveHeaderOffset+8:], 0)
	}
	return out
}

// sanitizeFP returns a copy of fp (this host's size) that the host accepts:
// MXCSR masked with the host's MXCSR_MASK, xstate_bv limited to the host's
// features, xcomp_bv and the reserved header bytes zero.
func (p *Platform) sanitizeFP(fp []byte) []byte {
	out := append([]byte(nil), fp...)
	le := binary.LittleEndian
	mask := le.Uint32(p.initFP[fxsaveMXCSRMask:])
	if mask == 0 {
		mask = 0xffbf // the architectural default
	}
	le.PutUint32(out[fxsaveMXCSR:], le.Uint32(out[fxsaveMXCSR:])&mask)
	le.PutUint32(out[fxsaveMXCSRMask:], le.Uint32(p.initFP[fxsaveMXCSRMask:]))
	supported := le.Uint64(p.initFP[fxswXFeaturesOff:])
	if supported == 0 {
		supported = 3 // x87 and SSE
	}
	le.PutUint64(out[xsaveHeaderOffset:], le.Uint64(out[xsaveHeaderOffset:])&supported)
	clear(out[xsaveHeaderOffset+8 : xsaveHeaderOffset+64])
	return out
}
