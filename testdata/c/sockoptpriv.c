// sockoptpriv: tries the socket options of a host socket (snap run
// --network host) that would reach past the socket: netfilter's table
// replacements, whose structures hold pointers the host kernel would
// follow in the sentry's address space (tried with all-zero structures,
// which netfilter refuses before it changes anything; the sentry passes
// on only 16 bytes of them anyway), binding to an interface by its
// index, and the options Linux gives only to privileged processes (which
// the sentry may be: the sandbox is not).
//
// It prints one line per option, "NAME: ok" or "NAME: ERRNO", then "done".
// The last lines are options every program may set, which must stay ok.
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// Netfilter's option numbers (linux/netfilter_ipv4/ip_tables.h and the
// like), which musl does not ship.
#define IPT_SO_SET_REPLACE 64
#define IPT_SO_SET_ADD_COUNTERS 65
#define ARPT_SO_SET_REPLACE 96
#define EBT_SO_SET_ENTRIES 128
#define IP6T_SO_SET_REPLACE 64
#ifndef SO_BINDTOIFINDEX
#define SO_BINDTOIFINDEX 62
#endif
#ifndef IPV6_TCLASS
#define IPV6_TCLASS 67
#endif
#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif
#define TCP_REPAIR 19

static const char *errname(int e) {
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case EINVAL: return "EINVAL";
	case ENOENT: return "ENOENT";
	case EFAULT: return "EFAULT";
	case ENOMEM: return "ENOMEM";
	case ENOPROTOOPT: return "ENOPROTOOPT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENODEV: return "ENODEV";
	}
	return "other";
}

static void try(const char *name, int fd, int level, int opt, const void *val, socklen_t len) {
	if (setsockopt(fd, level, opt, val, len) == 0)
		printf("%s: ok\n", name);
	else
		printf("%s: %s (%d)\n", name, errname(errno), errno);
}

int main(void) {
	int s4 = socket(AF_INET, SOCK_STREAM, 0);
	int s6 = socket(AF_INET6, SOCK_DGRAM, 0);
	if (s4 < 0 || s6 < 0) {
		perror("socket");
		return 1;
	}
	// Large enough for each table's replace structure (ipt_replace is 96
	// bytes); zero counters and entries, which netfilter refuses.
	static char zero[512];
	try("ipt-replace", s4, SOL_IP, IPT_SO_SET_REPLACE, zero, sizeof zero);
	try("ipt-add-counters", s4, SOL_IP, IPT_SO_SET_ADD_COUNTERS, zero, sizeof zero);
	try("arpt-replace", s4, SOL_IP, ARPT_SO_SET_REPLACE, zero, sizeof zero);
	try("ebt-entries", s4, SOL_IP, EBT_SO_SET_ENTRIES, zero, sizeof zero);
	try("ip6t-replace", s6, SOL_IPV6, IP6T_SO_SET_REPLACE, zero, sizeof zero);
	int lo = 1, one = 1, big = 1 << 24, prio7 = 7, prio3 = 3;
	try("bindtoifindex", s4, SOL_SOCKET, SO_BINDTOIFINDEX, &lo, sizeof lo);
	try("mark", s4, SOL_SOCKET, SO_MARK, &one, sizeof one);
	try("rcvbufforce", s4, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
	try("priority-7", s4, SOL_SOCKET, SO_PRIORITY, &prio7, sizeof prio7);
	try("debug", s4, SOL_SOCKET, SO_DEBUG, &one, sizeof one);
	try("ip-transparent", s4, SOL_IP, IP_TRANSPARENT, &one, sizeof one);
	try("ipv6-transparent", s6, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one);
	try("tcp-repair", s4, IPPROTO_TCP, TCP_REPAIR, &one, sizeof one);
	// Not a privilege, but the host would send from the sentry's buffer
	// after the call returned.
	try("zerocopy", s4, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one);
	int tos = 0x10, tclass = 0x20;
	try("reuseaddr", s4, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	try("priority-3", s4, SOL_SOCKET, SO_PRIORITY, &prio3, sizeof prio3);
	try("ip-tos", s4, SOL_IP, IP_TOS, &tos, sizeof tos);
	try("ipv6-tclass", s6, SOL_IPV6, IPV6_TCLASS, &tclass, sizeof tclass);
	puts("done");
	return 0;
}
