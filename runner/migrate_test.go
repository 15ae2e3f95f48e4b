package runner

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"snapshotter/migration"
)

// TestAskTarget: a source that lost its connection after the hand-over
// asks the target's answerer on new connections. The answerer answers
// what it decided (waiting for the decision if it has not made it yet);
// a target that does not know the migration, has the wrong token, or
// cannot be reached leaves the source in doubt once its wait passes.
func TestAskTarget(t *testing.T) {
	const id = "0123456789abcdef"
	for _, tc := range []struct {
		name   string
		ask    string // the id asked about
		token  string // the source's token
		decide byte   // what the target decides, after a moment
		closed bool   // nothing listens
		want   byte
		doubt  bool
	}{
		{name: "running", ask: id, token: "tok", decide: migration.AnswerRunning, want: migration.AnswerRunning},
		{name: "discarded", ask: id, token: "tok", decide: migration.AnswerDiscarded, want: migration.AnswerDiscarded},
		{name: "unknown-id", ask: "another", token: "tok", decide: migration.AnswerRunning, doubt: true},
		{name: "wrong-token", ask: id, token: "guess", decide: migration.AnswerRunning, doubt: true},
		{name: "unreachable", ask: id, token: "tok", closed: true, doubt: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			a := &answerer{ln: ln, token: []byte("tok"), decided: make(chan struct{}), asked: make(chan struct{})}
			a.serve(id, nil)
			if tc.closed {
				ln.Close()
			}
			// The question may come before the decision: it waits.
			go func() {
				time.Sleep(20 * time.Millisecond)
				a.decide(tc.decide)
			}()
			// An answer may take long on a loaded machine; no answer
			// comes however long the wait, so a short one shows it.
			wait := time.Minute
			if tc.doubt {
				wait = 300 * time.Millisecond
			}
			got, err := askTarget(context.Background(), ln.Addr().String(), []byte(tc.token), tc.ask, wait)
			if tc.doubt {
				if err == nil {
					t.Errorf("askTarget = answer %d, want no answer", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("askTarget = %d, %v; want %d", got, err, tc.want)
			}
			select {
			case <-a.asked:
			case <-time.After(5 * time.Second):
				t.Errorf("the answerer did not record that the source asked")
			}
		})
	}
}

// TestAnswererRefusesMigration: once a target received its sandbox, a
// second migration to it is refused with a reason.
func TestAnswererRefusesMigration(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a := &answerer{ln: ln, token: []byte("tok"), decided: make(chan struct{}), asked: make(chan struct{})}
	a.serve("x", nil)
	a.decide(migration.AnswerRunning)
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, err := migration.Connect(nc, []byte("tok"))
	if err != nil {
		t.Fatal(err)
	}
	c.Write(migration.FrameMeta, []byte(`{}`))
	c.Flush()
	if _, _, err := c.Read(); !errors.Is(err, migration.ErrRemote) {
		t.Errorf("second migration: read = %v, want the target's refusal (ErrRemote)", err)
	}
}

// TestIsLoopback: only a loopback target gets a big round uncompressed.
func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7070}, true},
		{&net.TCPAddr{IP: net.IPv4(127, 3, 2, 1), Port: 7070}, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 7070}, true},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 7070}, false},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 7070}, false},
		{&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, false},
	} {
		if got := isLoopback(tc.addr); got != tc.want {
			t.Errorf("isLoopback(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
