package checkpoint

import "testing"

// restoreWithLine restores uri with a new stdin FIFO and writes line to
// it; it returns the restored sandbox's ID and output file.
func (e *env) restoreWithLine(uri, fifo, line string) (string, string) {
	e.t.Helper()
	in := e.fifo(fifo)
	id, out := e.restoreDetached(uri, in.Name())
	in.WriteString(line)
	return id, out
}

// saveSockhold runs sockhold MODE with its stdin on a FIFO, saves it once
// it has printed n lines, the last of them wantLast, and waits for it to
// end; it returns the image's URI.
func (e *env) saveSockhold(mode string, n int, wantLast string) string {
	e.t.Helper()
	in := e.fifo("in0")
	id, out := e.runDetached(in.Name(), program(e.t, "sockhold"), mode)
	uri, last := e.saveAfter(id, out, n)
	if last != wantLast {
		e.t.Fatalf("last line before the save = %q, want %s", last, wantLast)
	}
	e.waitGone(id)
	return uri
}

// TestUnixStreamAcrossRestores: two processes exchange a checked byte
// stream over a Unix stream socketpair (one way the bytes, the other way
// their running sums); it is saved twice mid-stream, while the writer is
// blocked with bytes queued, and each restore continues it with no byte
// lost, duplicated or reordered.
func TestUnixStreamAcrossRestores(t *testing.T) { streamAcrossRestores(t, "stream") }

// TestTCPStreamAcrossRestores: the same exchange over a TCP connection on
// the sandbox's loopback, saved with bytes in flight both ways and
// restored twice.
func TestTCPStreamAcrossRestores(t *testing.T) { streamAcrossRestores(t, "tcp") }

// streamAcrossRestores runs sockhold MODE 4, saves it after its first
// MiB, restores it, saves the restored copy after the second MiB and
// restores that to the end.
func streamAcrossRestores(t *testing.T, mode string) {
	e := newEnv(t)
	in := e.fifo("in0")
	id, out := e.runDetached(in.Name(), program(t, "sockhold"), mode, "4")
	waitLines(t, out, 1)
	in.WriteString("go\n")
	uri, last := e.saveAfter(id, out, 2)
	if last != "block 0 in order: yes" {
		t.Fatalf("last line before the first save = %q, want block 0 in order: yes", last)
	}
	e.waitGone(id)

	rid, rout := e.restoreWithLine(uri, "in1", "go\n")
	if ls := waitLines(t, rout, 1); ls[0] != "block 1 in order: yes" {
		t.Fatalf("first restore printed %q, want block 1 in order: yes", ls)
	}
	uri2 := lastLine(e.must("save", rid))
	e.waitGone(rid)

	_, rout2 := e.restoreWithLine(uri2, "in2", "go\ngo\n")
	wantLines(t, "second restore", waitLines(t, rout2, 5),
		"block 2 in order: yes", "block 3 in order: yes", "writer: every ack matched: yes",
		"reader: 4194304 bytes, all in order: yes, then EOF: yes", "writer exit: 0")
}

// TestUnixRightsInFlight: two datagrams (their boundaries and the sender's
// autobound name) and then a pipe's read end sent over SCM_RIGHTS, whose
// only reference is in the socket's queue at the save, arrive after the
// restore, the pipe with its bytes and its end of file; the image restores
// twice with the same result.
func TestUnixRightsInFlight(t *testing.T) {
	e := newEnv(t)
	uri := e.saveSockhold("rights", 1, "in flight")
	for _, fifo := range []string{"in1", "in2"} {
		_, rout := e.restoreWithLine(uri, fifo, "go\n")
		wantLines(t, "restore "+fifo, waitLines(t, rout, 3),
			"child got datagrams of 14 and 6 bytes, sender autobound: yes",
			"child got 'payload-42' with 'fd', then EOF: yes", "child exit: 0")
	}
}

// TestUnixAcceptQueue: a connection waiting in a listener's accept queue,
// with the data its client sent, is saved; after the restore the listener
// accepts it, reads the data and answers the client, which was blocked in
// recv across the save.
func TestUnixAcceptQueue(t *testing.T) { acceptQueue(t, "listen") }

// TestTCPAcceptQueue is TestUnixAcceptQueue with a TCP listener on the
// sandbox's loopback.
func TestTCPAcceptQueue(t *testing.T) { acceptQueue(t, "tcplisten") }

func acceptQueue(t *testing.T, mode string) {
	e := newEnv(t)
	uri := e.saveSockhold(mode, 1, "connected")
	_, rout := e.restoreWithLine(uri, "in1", "go\n")
	wantLines(t, "restored", waitLines(t, rout, 3),
		"accepted, got 'hello from the queue'", "child got 'welcome'", "child exit: 0")
}

// TestUnixBlockedAccept: a seqpacket listener blocked in accept at the save
// accepts, after the restore, a connection made then.
func TestUnixBlockedAccept(t *testing.T) { blockedAccept(t, "accept") }

// TestTCPBlockedAccept is TestUnixBlockedAccept with a TCP listener on the
// sandbox's loopback, its port kept across the restore.
func TestTCPBlockedAccept(t *testing.T) { blockedAccept(t, "tcpaccept") }

func blockedAccept(t *testing.T, mode string) {
	e := newEnv(t)
	uri := e.saveSockhold(mode, 1, "accepting")
	_, rout := e.restoreWithLine(uri, "in1", "go\n")
	wantLines(t, "restored", waitLines(t, rout, 2), "accepted after the wait, got 'late greeting'", "child exit: 0")
}

// TestUDPAndHalfClosed: two datagrams queued at a bound UDP socket and a
// TCP connection in the accept queue whose client sent bytes and shut down
// writing are saved; after the restore the datagrams come with their
// sender's port, the bytes then the end of stream, and the half-closed
// client still receives the answer it waited for across the save.
func TestUDPAndHalfClosed(t *testing.T) {
	e := newEnv(t)
	uri := e.saveSockhold("udp", 1, "sent")
	_, rout := e.restoreWithLine(uri, "in1", "go\n")
	wantLines(t, "restored", waitLines(t, rout, 4),
		"datagrams of 12 and 3 bytes, from the child's port: yes", "accepted, got 'half' (4), then EOF: yes",
		"child got 'still open' (10) after its shutdown", "child exit: 0")
}
