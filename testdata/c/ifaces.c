/*
 * ifaces: the loopback interface as programs find it: getifaddrs (its
 * AF_PACKET, AF_INET and AF_INET6 entries for lo with flags, addresses and
 * netmasks), if_nameindex and if_nametoindex, SIOCGIFCONF, a raw
 * NETLINK_ROUTE RTM_GETLINK request for index 1 and for a missing index,
 * and getaddrinfo with AI_ADDRCONFIG. Only lo is printed, so the output
 * is the same on a host with more interfaces.
 *
 * "ifaces all" instead prints every interface if_nameindex and getifaddrs
 * list, with their addresses (the host's, under --network host).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* The netlink structures (linux/netlink.h and linux/rtnetlink.h, which
 * musl-gcc does not have). */
struct sockaddr_nl {
	unsigned short nl_family, nl_pad;
	unsigned nl_pid, nl_groups;
};
struct nlmsghdr {
	unsigned nlmsg_len;
	unsigned short nlmsg_type, nlmsg_flags;
	unsigned nlmsg_seq, nlmsg_pid;
};
struct nlmsgerr {
	int error;
	struct nlmsghdr msg;
};
struct ifinfomsg {
	unsigned char ifi_family, pad;
	unsigned short ifi_type;
	int ifi_index;
	unsigned ifi_flags, ifi_change;
};
struct rtattr {
	unsigned short rta_len, rta_type;
};
#define NETLINK_ROUTE 0
#define NETLINK_AUDIT 9
#define NLM_F_REQUEST 1
#define NLMSG_ERROR 2
#define RTM_NEWLINK 16
#define RTM_GETLINK 18
#define IFLA_IFNAME 3
#define ALIGN4(n) (((n) + 3) & ~3)
#define NLMSG_DATA(h) ((void *)((char *)(h) + sizeof(struct nlmsghdr)))
#define NLMSG_OK(h, n) ((n) >= (int)sizeof(struct nlmsghdr) && (h)->nlmsg_len >= sizeof(struct nlmsghdr) && (h)->nlmsg_len <= (unsigned)(n))
#define IFLA_RTA(i) ((struct rtattr *)((char *)(i) + ALIGN4(sizeof(struct ifinfomsg))))
#define IFLA_PAYLOAD(h) ((int)(h)->nlmsg_len - (int)sizeof(struct nlmsghdr) - ALIGN4((int)sizeof(struct ifinfomsg)))
#define RTA_OK(a, l) ((l) >= (int)sizeof(struct rtattr) && (a)->rta_len >= sizeof(struct rtattr) && (a)->rta_len <= (l))
#define RTA_NEXT(a, l) ((l) -= ALIGN4((a)->rta_len), (struct rtattr *)((char *)(a) + ALIGN4((a)->rta_len)))
#define RTA_DATA(a) ((void *)((char *)(a) + sizeof(struct rtattr)))

static const char *fam(int f)
{
	switch (f) {
	case AF_PACKET: return "AF_PACKET";
	case AF_INET: return "AF_INET";
	case AF_INET6: return "AF_INET6";
	}
	return "other";
}

static void addr(const struct sockaddr *sa, char *out, size_t n)
{
	out[0] = 0;
	if (!sa)
		snprintf(out, n, "-");
	else if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, n);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, n);
	else
		snprintf(out, n, "family %d", sa->sa_family);
}

static void ifaddrs_lo(void)
{
	struct ifaddrs *ifa;
	if (getifaddrs(&ifa) < 0) {
		printf("getifaddrs: %s\n", strerror(errno));
		return;
	}
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		if (strcmp(i->ifa_name, "lo") != 0)
			continue;
		char a[64], m[64];
		int f = i->ifa_addr ? i->ifa_addr->sa_family : -1;
		if (f == AF_PACKET) {
			printf("getifaddrs: lo %s flags UP %d LOOPBACK %d RUNNING %d\n", fam(f),
			       !!(i->ifa_flags & IFF_UP), !!(i->ifa_flags & IFF_LOOPBACK), !!(i->ifa_flags & IFF_RUNNING));
			continue;
		}
		addr(i->ifa_addr, a, sizeof a);
		addr(i->ifa_netmask, m, sizeof m);
		printf("getifaddrs: lo %s %s netmask %s\n", fam(f), a, m);
	}
	freeifaddrs(ifa);
}

static void nameindex(void)
{
	struct if_nameindex *ni = if_nameindex();
	if (!ni) {
		printf("if_nameindex: %s\n", strerror(errno));
		return;
	}
	for (struct if_nameindex *p = ni; p->if_index; p++)
		if (strcmp(p->if_name, "lo") == 0)
			printf("if_nameindex: %u %s\n", p->if_index, p->if_name);
	if_freenameindex(ni);
	printf("if_nametoindex(lo): %u\n", if_nametoindex("lo"));
}

static void ifconf(void)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct ifconf ic = {0};
	int r = ioctl(s, SIOCGIFCONF, &ic);
	printf("SIOCGIFCONF size query: %d, positive multiple of ifreq: %s\n", r,
	       ic.ifc_len > 0 && ic.ifc_len % sizeof(struct ifreq) == 0 ? "yes" : "no");
	struct ifreq reqs[32];
	ic.ifc_len = sizeof reqs;
	ic.ifc_req = reqs;
	r = ioctl(s, SIOCGIFCONF, &ic);
	for (int i = 0; r == 0 && i < ic.ifc_len / (int)sizeof(struct ifreq); i++) {
		if (strcmp(reqs[i].ifr_name, "lo") != 0)
			continue;
		char a[64];
		addr(&reqs[i].ifr_addr, a, sizeof a);
		printf("SIOCGIFCONF: lo %s\n", a);
	}
	ic.ifc_len = sizeof(struct ifreq) - 1;
	r = ioctl(s, SIOCGIFCONF, &ic);
	printf("SIOCGIFCONF with room for none: %d, length %d\n", r, ic.ifc_len);
	close(s);
	int fds[2];
	pipe(fds);
	r = ioctl(fds[0], SIOCGIFCONF, &ic);
	printf("SIOCGIFCONF on a pipe: %d %s\n", r, r < 0 && errno == ENOTTY ? "ENOTTY" : "other");
}

/* getlink asks RTM_GETLINK for one index and prints the answer's type. */
static void getlink(int fd, int index, unsigned seq)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
	} req = {{sizeof req, RTM_GETLINK, NLM_F_REQUEST, seq, 0}, {.ifi_index = index}};
	struct sockaddr_nl k = {.nl_family = AF_NETLINK};
	if (sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&k, sizeof k) < 0) {
		printf("netlink sendto: %s\n", strerror(errno));
		return;
	}
	char buf[8192];
	struct sockaddr_nl from;
	socklen_t fl = sizeof from;
	ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	if (n < (ssize_t)sizeof *h || !NLMSG_OK(h, n)) {
		printf("netlink recv: %zd\n", n);
		return;
	}
	printf("RTM_GETLINK %d: from port %u, seq ok %s, ", index, from.nl_pid, h->nlmsg_seq == seq ? "yes" : "no");
	if (h->nlmsg_type == NLMSG_ERROR) {
		struct nlmsgerr *e = NLMSG_DATA(h);
		printf("error %s\n", e->error == -ENODEV ? "ENODEV" : strerror(-e->error));
		return;
	}
	struct ifinfomsg *ifi = NLMSG_DATA(h);
	const char *name = "?";
	int len = IFLA_PAYLOAD(h);
	for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len))
		if (a->rta_type == IFLA_IFNAME)
			name = RTA_DATA(a);
	printf("type RTM_NEWLINK %s, index %d, name %s, loopback %s\n", h->nlmsg_type == RTM_NEWLINK ? "yes" : "no",
	       ifi->ifi_index, name, ifi->ifi_flags & IFF_LOOPBACK ? "yes" : "no");
}

static void rawnetlink(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0) {
		printf("socket(AF_NETLINK): %s\n", strerror(errno));
		return;
	}
	struct sockaddr_nl me = {.nl_family = AF_NETLINK};
	socklen_t l = sizeof me;
	int r = bind(fd, (struct sockaddr *)&me, sizeof me);
	getsockname(fd, (struct sockaddr *)&me, &l);
	printf("netlink bind: %d, family AF_NETLINK %s, port nonzero %s, length %u\n", r,
	       me.nl_family == AF_NETLINK ? "yes" : "no", me.nl_pid ? "yes" : "no", l);
	getlink(fd, 1, 7);
	getlink(fd, 9999, 8);
	char b;
	r = recv(fd, &b, 1, MSG_DONTWAIT);
	printf("nothing more: %d %s\n", r, r < 0 && errno == EAGAIN ? "EAGAIN" : "other");
	close(fd);
	fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT + 100);
	printf("socket(AF_NETLINK, unknown protocol): %d %s\n", fd, fd < 0 && errno == EPROTONOSUPPORT ? "EPROTONOSUPPORT" : "other");
}

static void addrconfig(void)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res;
	int r = getaddrinfo("127.0.0.1", "80", &hints, &res);
	printf("getaddrinfo 127.0.0.1 (AI_ADDRCONFIG): %d\n", r);
	if (r == 0)
		freeaddrinfo(res);
}

static void all(void)
{
	struct if_nameindex *ni = if_nameindex();
	for (struct if_nameindex *p = ni; p && p->if_index; p++)
		printf("if_nameindex: %u %s\n", p->if_index, p->if_name);
	if (ni)
		if_freenameindex(ni);
	struct ifaddrs *ifa;
	if (getifaddrs(&ifa) < 0) {
		printf("getifaddrs: %s\n", strerror(errno));
		return;
	}
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		char a[64] = "", m[64] = "";
		int f = i->ifa_addr ? i->ifa_addr->sa_family : -1;
		if (f == AF_INET || f == AF_INET6) {
			addr(i->ifa_addr, a, sizeof a);
			addr(i->ifa_netmask, m, sizeof m);
		}
		printf("getifaddrs: %s %s %s %s flags %#x\n", i->ifa_name, fam(f), a, m, i->ifa_flags);
	}
	freeifaddrs(ifa);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strcmp(argv[1], "all") == 0) {
		all();
		printf("done\n");
		return 0;
	}
	ifaddrs_lo();
	nameindex();
	ifconf();
	rawnetlink();
	addrconfig();
	printf("done\n");
	return 0;
}
