package runner

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// maxPassedFiles bounds the descriptors one control message may carry (a
// take passes three); more are closed by the host kernel.
const maxPassedFiles = 8

// rightsReader reads a unix socket and keeps the descriptors that arrive
// with the data (SCM_RIGHTS), for the frame being read. Used by one
// goroutine.
type rightsReader struct {
	c     *net.UnixConn
	oob   []byte
	files []*os.File
}

func newRightsReader(c *net.UnixConn) *rightsReader {
	return &rightsReader{c: c, oob: make([]byte, unix.CmsgSpace(4*maxPassedFiles))}
}

// Read implements io.Reader.
func (r *rightsReader) Read(p []byte) (int, error) {
	n, oobn, _, _, err := r.c.ReadMsgUnix(p, r.oob)
	if oobn > 0 {
		r.keep(r.oob[:oobn])
	}
	return n, err
}

// keep adds the descriptors of the control messages in oob.
func (r *rightsReader) keep(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			r.files = append(r.files, os.NewFile(uintptr(fd), fmt.Sprintf("passed-fd-%d", fd)))
		}
	}
}

// take returns the descriptors received so far and forgets them.
func (r *rightsReader) take() []*os.File {
	f := r.files
	r.files = nil
	return f
}

// closeFiles closes fs.
func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
