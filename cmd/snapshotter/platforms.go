package main

// Platforms linked into snap; each registers itself with platform.Register.
import _ "snapshotter/platform/ptrace"
