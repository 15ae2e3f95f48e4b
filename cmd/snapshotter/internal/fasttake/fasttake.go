// Package fasttake takes a member of a pool (`snap pool take`) while Go is
// still initialising snap, before the packages whose initialisation a take
// does not need: the kernel, the image formats, cobra. Those cost
// milliseconds, and a take is meant to cost about one.
//
// Like package early, it imports little (syscall, os/signal and early),
// so that Go initialises it among the first packages (see early's package
// doc). It handles the ordinary case only, with the same meaning as the
// full command (cmd/snapshotter/pool.go, runner.TakeFromPool): a command
// line of the global --state-dir and --store, `pool take NAME` and take's
// own flags; stdio files that open; a member that waits. Anything else —
// an unknown flag, a file that does not open, an empty pool, a state
// directory whose socket paths are too long for sockaddr_un — leaves the
// command to snap's full path, which reports errors and waits (--wait).
// Before it claims a member nothing is changed, so giving up costs nothing.
//
// The member taken starts the replenisher itself. With -d it prints the sandbox ID and exits at once; in the
// foreground it waits for the program on the same connection, passes
// SIGINT, SIGTERM and SIGHUP on as kill requests, and exits with the
// program's status, so that the rest of snap never initialises. An answer
// other than an exit status leaves the wait to the full command (Taken).
//
// SNAP_NO_FAST_TAKE=1 turns it off (the tests run both paths).
package fasttake

import (
	"os"
	"os/signal"
	"syscall"

	"snapshotter/cmd/snapshotter/internal/early"
)

// taken is the ID of the member this process took, or "".
var taken string

// Taken returns the ID of the member the fast path took in the
// foreground, or "" if it did not take one.
func Taken() string { return taken }

func init() {
	if getenv("SNAP_NO_FAST_TAKE") != "" {
		return
	}
	c, ok := parse(early.Args())
	if !ok {
		return
	}
	c.run()
}

// command is a parsed `snap pool take`.
type command struct {
	stateDir string
	name     string
	detach   bool
	paths    [3]string
}

// parse reads a `pool take` command line; ok is false for anything else.
func parse(args []string) (c command, ok bool) {
	words := 0 // "pool", "take", NAME seen
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) == 0 || a[0] != '-' || a == "-" {
			switch {
			case words == 0 && a == "pool", words == 1 && a == "take":
			case words == 2:
				c.name = a
			default:
				return c, false
			}
			words++
			continue
		}
		name, value, hasValue := cut(a, '=')
		switch name {
		case "-d", "--detach":
			if hasValue || words < 2 {
				return c, false
			}
			c.detach = true
			continue
		case "--wait":
			if hasValue || words < 2 {
				return c, false
			}
			continue // the fast path never waits; the full one does
		case "--state-dir", "--store", "--stdin", "--stdout", "--stderr":
		default:
			return c, false
		}
		if !hasValue {
			i++
			if i >= len(args) {
				return c, false
			}
			value = args[i]
		}
		switch name {
		case "--state-dir":
			c.stateDir = value
		case "--stdin":
			c.paths[0] = value
		case "--stdout":
			c.paths[1] = value
		case "--stderr":
			c.paths[2] = value
		}
		if name != "--state-dir" && name != "--store" && words < 2 {
			return c, false
		}
	}
	if words != 3 || !validName(c.name) {
		return c, false
	}
	if c.stateDir == "" {
		c.stateDir = defaultStateDir()
	}
	return c, c.stateDir != ""
}

// defaultStateDir is the state directory snap's root command defaults to.
func defaultStateDir() string {
	if d := getenv("SNAP_STATE_DIR"); d != "" {
		return d
	}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return d + "/snap"
	}
	tmp := getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	return tmp + "/snap-" + itoa(syscall.Getuid())
}

// validName follows runner.ValidateID.
func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// maxSunPath is the size of sockaddr_un.sun_path less its NUL.
const maxSunPath = 107

// run takes a member if it can. It returns to leave the command to the
// full path, and exits after a detached take.
func (c command) run() {
	fds, ok := c.openStdio()
	if !ok {
		return
	}
	defer closeOwned(fds)
	// From before the take: a signal that comes while the program starts
	// is passed on to it too.
	var sigs chan os.Signal
	if !c.detach {
		sigs = make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(sigs)
	}
	pool := c.stateDir + "/.pools/" + c.name
	ids, ok := readDir(pool + "/waiting")
	if !ok {
		return
	}
	for _, id := range ids {
		if len(c.stateDir)+1+len(id)+len("/control.sock") > maxSunPath {
			return
		}
	}
	ids = primedFirst(pool, ids)
	for _, id := range ids {
		if !validName(id) || syscall.Unlink(pool+"/waiting/"+id) != nil {
			continue // taken by another
		}
		// Claimed: from here on this member is ours or unusable (a dead
		// one is dropped by the replenisher).
		conn, ok := take(c.stateDir+"/"+id+"/control.sock", fds)
		if !ok {
			continue
		}
		// The member starts the replenisher itself.
		if c.detach {
			write(1, id+"\n")
			syscall.Exit(0)
		}
		closeOwned(fds)
		if code, ok := waitExit(conn, sigs); ok {
			syscall.Exit(code)
		}
		syscall.Close(conn)
		taken = id
		return
	}
}

// waitExit waits on conn, the member's control connection, for its
// program to end, passing the signals that come on sigs on to it as kill
// requests, and returns the status snap exits with. Anything but an exit
// status (the connection broke, the sandbox was saved and stopped) is
// left to the full command: ok is false.
func waitExit(conn int, sigs chan os.Signal) (code int, ok bool) {
	if !sendFrame(conn, request(2, "wait", 0)) {
		return 0, false
	}
	// S/R-SAFE: not kernel code; the goroutine ends with the process.
	go func() {
		id := 3
		for s := range sigs {
			sendFrame(conn, request(id, "kill", int(s.(syscall.Signal))))
			id++
		}
	}()
	for {
		body, ok := readFrame(conn)
		if !ok {
			return 0, false
		}
		if id, _ := mapInt(body, "id"); id != 2 {
			continue // a kill's answer
		}
		if kind, _ := mapString(body, "kind"); kind != "result" {
			return 0, false
		}
		exit, ok := mapValue(body, "exit")
		if !ok {
			return 0, false
		}
		if sig, ok := mapInt(exit, "signal"); ok && sig != 0 {
			return 128 + sig, true
		}
		return mapInt(exit, "code")
	}
}

// openStdio opens the given stdio files (flags as runner's), or uses
// snap's own (foreground) or /dev/null (detached).
func (c command) openStdio() ([3]int, bool) {
	fds := [3]int{0, 1, 2}
	for i, p := range c.paths {
		if p == "" && !c.detach {
			continue
		}
		if p == "" {
			p = "/dev/null"
		}
		flag := syscall.O_WRONLY | syscall.O_CREAT | syscall.O_APPEND
		if i == 0 {
			flag = syscall.O_RDONLY
		}
		fd, err := syscall.Open(p, flag|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			closeOwned(fds)
			return fds, false
		}
		fds[i] = fd
	}
	return fds, true
}

// closeOwned closes the descriptors of fds that openStdio opened.
func closeOwned(fds [3]int) {
	for i, fd := range fds {
		if fd != i {
			syscall.Close(fd)
		}
	}
}

// readDir returns the names in dir.
func readDir(dir string) ([]string, bool) {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	defer syscall.Close(fd)
	var names []string
	buf := make([]byte, 8<<10)
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, false
		}
		if n <= 0 {
			return names, true
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
}

// primedFirst returns ids with the pool's primed member (the target of
// its "primed" link, runner's pool_prime.go), if among them, moved first:
// its take copies nothing before the program runs.
func primedFirst(pool string, ids []string) []string {
	var buf [65]byte
	n, err := syscall.Readlink(pool+"/primed", buf[:])
	if err != nil || n >= len(buf) {
		return ids
	}
	id := string(buf[:n])
	for k, v := range ids {
		if v == id && validName(id) {
			copy(ids[1:k+1], ids[:k])
			ids[0] = id
			break
		}
	}
	return ids
}

// take connects to a member's control socket and sends it a take request
// with fds; it returns the connection once the member answered with
// success.
func take(sock string, fds [3]int) (int, bool) {
	s, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, false
	}
	if err := retry(func() error { return syscall.Connect(s, &syscall.SockaddrUnix{Name: sock}) }); err != nil {
		syscall.Close(s)
		return -1, false
	}
	rights := syscall.UnixRights(fds[0], fds[1], fds[2])
	if err := retry(func() error { return syscall.Sendmsg(s, takeFrame(), rights, nil, 0) }); err != nil {
		syscall.Close(s)
		return -1, false
	}
	body, ok := readFrame(s)
	if kind, _ := mapString(body, "kind"); !ok || kind != "result" {
		syscall.Close(s)
		return -1, false
	}
	return s, true
}

// readFrame reads one control protocol frame's body.
func readFrame(s int) ([]byte, bool) {
	var hdr [4]byte
	if !readFull(s, hdr[:]) {
		return nil, false
	}
	n := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	if n > 1<<20 {
		return nil, false
	}
	body := make([]byte, n)
	return body, readFull(s, body)
}

// sendFrame writes one frame.
func sendFrame(s int, frame []byte) bool {
	for len(frame) > 0 {
		n, err := syscall.Write(s, frame)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return false
		}
		frame = frame[n:]
	}
	return true
}

// request returns the frame of a request (runner.Request): {"v": 1, "id":
// id, "type": typ}, and "signal" if not 0. id and signal are below 128.
func request(id int, typ string, signal int) []byte {
	n := byte(3)
	if signal != 0 {
		n = 4
	}
	b := []byte{0, 0, 0, 0, 0x80 | n, 0xa1, 'v', 1, 0xa2, 'i', 'd', byte(id & 0x7f), 0xa4, 't', 'y', 'p', 'e', 0xa0 | byte(len(typ))}
	b = append(b, typ...)
	if signal != 0 {
		b = append(b, 0xa6, 's', 'i', 'g', 'n', 'a', 'l', byte(signal&0x7f))
	}
	b[3] = byte(len(b) - 4)
	return b
}

// takeFrame returns the take request, {"v": 1, "id": 1, "type": "take"}.
func takeFrame() []byte { return request(1, "take", 0) }

func getenv(k string) string {
	v, _ := syscall.Getenv(k)
	return v
}

func retry(op func() error) error {
	for {
		if err := op(); err != syscall.EINTR {
			return err
		}
	}
}

func readFull(fd int, b []byte) bool {
	for len(b) > 0 {
		n, err := syscall.Read(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

func write(fd int, s string) {
	b := []byte(s)
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		b = b[n:]
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
