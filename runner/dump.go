package runner

import (
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"

	"golang.org/x/sys/unix"
)

// TaskWriter is implemented by sandboxes that can describe their tasks
// (KernelSandbox: kernel.Kernel.WriteTasks).
type TaskWriter interface {
	WriteTasks(w io.Writer)
}

// WriteTasks implements TaskWriter.
func (s *KernelSandbox) WriteTasks(w io.Writer) { s.k.WriteTasks(w) }

// dumpOnSignal has the sentry write, each time it gets SIGUSR1, the
// sandbox's tasks (TaskWriter) and every goroutine's stack to its log
// (sentry.log), and go on: for a sandbox that makes no progress. The
// returned function stops it.
func dumpOnSignal(id string, sb Sandbox) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGUSR1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				writeDump(log.Writer(), id, sb)
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// writeDump writes what dumpOnSignal documents to w.
func writeDump(w io.Writer, id string, sb Sandbox) {
	log.Printf("sandbox %s: dump (SIGUSR1)", id)
	if tw, ok := sb.(TaskWriter); ok {
		tw.WriteTasks(w)
	}
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 64<<20 {
			w.Write(buf[:n])
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	log.Printf("sandbox %s: dump ends", id)
}
