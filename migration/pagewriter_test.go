package migration

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// TestPageWriter sends memory through the pipeline between two other
// frames and reads it back in order (with and without the target's
// read-ahead): every frame opens (their numbers
// follow the connection's), the pages arrive at their offsets, and zero
// pages are left out only when asked.
func TestPageWriter(t *testing.T) {
	// Memory of 40 pages: pages 3-5 and 20 zero, the rest a pattern that
	// compresses; pieces of 1 to 9 pages in batches of 8.
	mem := make([]byte, 40*pageSize)
	for p := range 40 {
		if p >= 3 && p <= 5 || p == 20 {
			continue
		}
		for i := 0; i < pageSize; i += 8 {
			binary.LittleEndian.PutUint64(mem[p*pageSize+i:], uint64(p)<<32|uint64(i%64)|1)
		}
	}
	pieces := [][2]int{{0, 7}, {7, 8}, {8, 17}, {17, 25}, {25, 40}} // [first, end) pages
	for _, tc := range []struct {
		name               string
		skipZero, compress bool
		workers            int
		readAhead          int // the target's read-ahead workers, 0: none
	}{
		{name: "all pages, compressed", compress: true, workers: 2},
		{name: "inline, non-zero pages, compressed", skipZero: true, compress: true, workers: 0, readAhead: 1},
		{name: "inline, all pages, raw", workers: 0},
		{name: "all pages, raw", workers: 1, readAhead: 1},
		{name: "non-zero pages, compressed", skipZero: true, compress: true, workers: 3, readAhead: 2},
		{name: "non-zero pages, raw", skipZero: true, workers: 2, readAhead: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, source, terr, serr := pair(t, "tok", "tok")
			if terr != nil || serr != nil {
				t.Fatal(terr, serr)
			}
			source.SetCompression(tc.compress)
			if tc.readAhead > 0 {
				if err := target.ReadAhead(tc.readAhead); err != nil {
					t.Fatal(err)
				}
				defer target.Close()
			}
			errc := make(chan error, 1)
			go func() {
				errc <- func() error {
					if err := source.Write(FrameRound, []byte{1}); err != nil {
						return err
					}
					// Twice: the second PageWriter reuses the first's
					// batches and sealers (with workers, or inline).
					for _, workers := range []int{tc.workers, 2 - min(tc.workers, 2)} {
						w, err := source.NewPageWriter(8*pageSize, workers, tc.skipZero)
						if err != nil {
							return err
						}
						for _, p := range pieces {
							// A piece of 9 pages does not fit a batch: two.
							for first := p[0]; first < p[1]; first += 8 {
								end := min(first+8, p[1])
								b, err := w.Add(uint64(first*pageSize), (end-first)*pageSize)
								if err != nil {
									return err
								}
								copy(b, mem[first*pageSize:end*pageSize])
							}
						}
						if err := w.Close(); err != nil {
							return err
						}
					}
					if err := source.Write(FrameGo, nil); err != nil {
						return err
					}
					return source.Flush()
				}()
			}()
			if typ, _, err := target.Read(); err != nil || typ != FrameRound {
				t.Fatalf("first frame = type %d, %v; want Round", typ, err)
			}
			got := make([]byte, len(mem))
			sent := map[int]bool{}
			for {
				typ, p, err := target.Read()
				if err != nil {
					t.Fatalf("Read() = %v", err)
				}
				if typ == FrameGo {
					break
				}
				if typ != FramePages || len(p) < 8+pageSize {
					t.Fatalf("frame of type %d, %d bytes; want pages", typ, len(p))
				}
				off := int(binary.LittleEndian.Uint64(p))
				copy(got[off:], p[8:])
				for i := off / pageSize; i < (off+len(p)-8)/pageSize; i++ {
					sent[i] = true
				}
			}
			if err := <-errc; err != nil {
				t.Fatalf("source: %v", err)
			}
			if !bytes.Equal(got, mem) {
				t.Errorf("the pages read differ from the memory sent")
			}
			if want := 2 * len(mem); !tc.skipZero && source.RawBytes < uint64(want) {
				t.Errorf("raw bytes sent = %d, want at least %d (two rounds)", source.RawBytes, want)
			}
			for p := range 40 {
				zero := p >= 3 && p <= 5 || p == 20
				if want := !zero || !tc.skipZero; sent[p] != want {
					t.Errorf("page %d sent = %v, want %v", p, sent[p], want)
				}
			}
			if compressed := source.WireBytes < source.RawBytes; compressed != tc.compress {
				t.Errorf("wire bytes %d, raw %d: compressed = %v, want %v", source.WireBytes, source.RawBytes, compressed, tc.compress)
			}
		})
	}
}

// TestEndReadAhead: the target reads a round ahead up to Sync, ends the
// read-ahead, answers, and reads what the source sends next on its own
// goroutine; a source that does not wait for the answer breaks the
// sequence (ErrCorrupt).
func TestEndReadAhead(t *testing.T) {
	for _, tc := range []struct {
		name    string
		waits   bool // the source waits for Synced before sending on
		wantErr bool
	}{
		{name: "source waits", waits: true},
		{name: "source sends on", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, source, terr, serr := pair(t, "tok", "tok")
			if terr != nil || serr != nil {
				t.Fatal(terr, serr)
			}
			page := bytes.Repeat([]byte{9}, pageSize)
			flushed := make(chan struct{}) // the pipe's reader took it all
			go func() {
				for i := range 20 {
					source.WritePages(uint64(i*pageSize), page)
				}
				source.Write(FrameSync, nil)
				if !tc.waits {
					source.Write(FrameState, []byte("early"))
				}
				source.Flush()
				close(flushed)
				if tc.waits {
					if _, err := source.Expect(FrameSynced); err != nil {
						return
					}
				}
				source.Write(FrameState, []byte("after"))
				source.Flush()
			}()
			if err := target.ReadAhead(2); err != nil {
				t.Fatal(err)
			}
			defer target.Close()
			for i := range 20 {
				if typ, p, err := target.Read(); err != nil || typ != FramePages || !bytes.Equal(p[8:], page) {
					t.Fatalf("frame %d = type %d, %v; want the page", i, typ, err)
				}
			}
			if _, err := target.Expect(FrameSync); err != nil {
				t.Fatal(err)
			}
			// The early frame, if any, is in the connection's buffer: the
			// read-ahead reads it before it waits on the connection.
			<-flushed
			err := target.EndReadAhead()
			if tc.wantErr {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("EndReadAhead() = %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("EndReadAhead() = %v", err)
			}
			target.Write(FrameSynced, nil)
			target.Flush()
			if p, err := target.Expect(FrameState); err != nil || string(p) != "after" {
				t.Fatalf("after the read-ahead: %q, %v; want the state frame", p, err)
			}
		})
	}
}

// TestPageWriterAbort: Abort drops the batch being filled and sends the
// ones before it; the frames after it still open (the dropped batch took
// no frame numbers).
func TestPageWriterAbort(t *testing.T) {
	for _, workers := range []int{0, 2} {
		target, source, terr, serr := pair(t, "tok", "tok")
		if terr != nil || serr != nil {
			t.Fatal(terr, serr)
		}
		page := bytes.Repeat([]byte{5}, pageSize)
		errc := make(chan error, 1)
		go func() {
			errc <- func() error {
				w, err := source.NewPageWriter(2*pageSize, workers, false)
				if err != nil {
					return err
				}
				for i := range 3 { // the third page starts a second batch
					b, err := w.Add(uint64(i*pageSize), pageSize)
					if err != nil {
						return err
					}
					copy(b, page)
				}
				w.Abort()
				if err := source.Write(FrameGo, nil); err != nil {
					return err
				}
				return source.Flush()
			}()
		}()
		var offs []uint64
		for {
			typ, p, err := target.Read()
			if err != nil {
				t.Fatalf("workers %d: Read() = %v", workers, err)
			}
			if typ == FrameGo {
				break
			}
			offs = append(offs, binary.LittleEndian.Uint64(p))
		}
		if err := <-errc; err != nil {
			t.Fatalf("workers %d: source: %v", workers, err)
		}
		if len(offs) != 2 || offs[0] != 0 || offs[1] != pageSize {
			t.Errorf("workers %d: frames at %v, want [0 %d] (pages 0 and 1; page 2 dropped)", workers, offs, pageSize)
		}
	}
}
