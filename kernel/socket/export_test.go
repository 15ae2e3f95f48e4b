package socket

// NamesOf returns the namespace s binds in, for tests that reach a loaded
// kernel's namespace through one of its sockets.
func NamesOf(s *Socket) *Names { return s.names }
