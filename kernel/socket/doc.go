// Package socket implements the sandbox's sockets: the Unix domain
// (AF_UNIX: stream, datagram and seqpacket sockets, connected pairs,
// listeners with accept queues, abstract names, descriptors and
// credentials passed in messages) and the sandbox's network (AF_INET and
// AF_INET6 TCP and UDP on a loopback of 127.0.0.0/8 and ::1; inet.go).
// Every socket lives in the sentry; none is backed by a host socket, so a
// sandbox reaches nothing on its host through them (the kernel's published
// ports connect to them from the sentry, DialLoopback), except under
// --network host, where an AF_INET or AF_INET6 socket is a host socket the
// sentry holds (host.go).
//
// # The network
//
// The loopback needs no TCP/IP: a TCP socket is a Stream socket whose
// peer is the other end of its connection, with the queues, shutdown,
// waits and reset-on-unread-close of a Unix stream socket and TCP's
// differences where a program can see them (a FIN lets the peer write
// once more before EPIPE; SO_LINGER 0 resets; a 4 MiB window instead of
// the send buffer). A UDP socket is a Dgram socket found by its port. A
// Names holds the port table (protocol and port to the sockets bound
// there, with Linux's SO_REUSEADDR and SO_REUSEPORT rules) next to the
// abstract names; Addr keeps IPv4 addresses v4-mapped, so that a
// dual-stack AF_INET6 socket is found by IPv4 peers without a second
// table.
//
// The kernel (package kernel) imports socket; socket imports vfs and never
// the kernel. A Socket is a vfs.Impl: the kernel wraps it in a vfs.File
// (NewFile), so descriptors, dup, fork, close-on-exec, poll, select and epoll
// work as for any file, and read(2)/write(2) are recv and send without
// flags. The socket calls (bind, connect, sendmsg, ...) are methods the
// kernel calls with the arguments it copied from the application. The
// bytes sent and received are not staged: SendSeq and RecvSeq take the
// application's memory as a vfs.IOSeq and copy each part of a send
// straight into the message that queues it, and each part of a receive
// straight out of the queued message (a Socket is a vfs.SeqImpl, so
// read(2) and write(2) do the same). Host and netlink sockets stage.
//
// # Names
//
// An address is abstract (a leading NUL byte; the names live in a Names,
// one per kernel) or a path. Path names belong to the filesystem that holds
// the path: the kernel passes a Paths that binds and looks them up. In a
// tmpfs the socket file holds the socket; on the read-only root its Paths
// refuses a bind the way Linux refuses one on a read-only mount (EROFS, or
// EADDRINUSE for a path that exists) and finds no socket at any path
// (ENOENT or ECONNREFUSED).
//
// # Buffers
//
// As in Linux, a sender accounts the bytes it has queued at its receivers
// (plus msgOverhead per message) against its send buffer (SO_SNDBUF,
// default 212992, doubled when set); a datagram socket that is not
// connected back to its sender holds at most maxDgramQlen+1 datagrams.
// Linux charges the real size of its buffers, so how many small messages
// fit before EAGAIN differs a little from Linux. A stream sender blocked on
// a full buffer is woken when it is writable again (as Linux's
// sk_write_space), not at every message consumed; a stream message of at
// most 64 KiB keeps its bytes in a pooled buffer (streambuf.go). A send
// copies into a message without mu, charging its size meanwhile; a
// stream receive copies out without mu, holding the socket's readMu so
// that no other reader consumes (and frees) the message meanwhile.
//
// # Blocking
//
// Operations that wait take the task's cancel channel and return
// vfs.ErrInterrupted when it closes before anything was transferred, as
// pipes do; the kernel restarts or fails the call (ERESTARTSYS), and a save
// interrupts every wait, so a blocked accept, connect, send or recv waits
// again after a restore.
//
// # Save and restore
//
// Sockets are savable with everything they hold: accept queues (sockets
// connected but not yet accepted), queued messages with their boundaries,
// sender addresses and credentials, and the files in flight in them
// (vfs.File references, saved with the rest of the kernel's files).
//
// # Locking
//
// One lock, mu, protects every socket's mutable fields and every Names: a
// send or a connect touches two sockets, and one lock keeps that simple. It
// is a leaf below the vfs locks a caller may hold; vfs.File.DecRef is never
// called with it held (a file in flight may be a socket), nor is the
// application's memory touched (an IOSeq). Lock order:
//
//	Socket.readMu (a stream receive)
//	  mu
//
// and readMu is held, mu not, while a receive copies into an IOSeq.
package socket

//go:generate go run snapshotter/tools/stategen
// +stateify package=snapshotter/kernel/socket
