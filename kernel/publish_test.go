package kernel

import (
	"errors"
	"testing"
)

func TestParsePortMapping(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want PortMapping
		err  bool
	}{
		{in: "8080:80", want: PortMapping{HostAddr: "127.0.0.1", HostPort: 8080, Port: 80}},
		{in: "0.0.0.0:8080:80", want: PortMapping{HostAddr: "0.0.0.0", HostPort: 8080, Port: 80}},
		{in: "[::1]:8080:80", want: PortMapping{HostAddr: "::1", HostPort: 8080, Port: 80}},
		{in: "5353:53/udp", want: PortMapping{HostAddr: "127.0.0.1", HostPort: 5353, Port: 53, Proto: "udp"}},
		{in: "[::1]:5353:53/udp", want: PortMapping{HostAddr: "::1", HostPort: 5353, Port: 53, Proto: "udp"}},
		{in: "8080:80/tcp", want: PortMapping{HostAddr: "127.0.0.1", HostPort: 8080, Port: 80}},
		{in: "8080:80/sctp", err: true},
		{in: "8080:80/", err: true},
		{in: "80/udp", err: true},
		{in: "80", err: true},
		{in: "0:80", err: true},
		{in: "8080:0", err: true},
		{in: "8080:65536", err: true},
		{in: "localhost:8080:80", err: true},
		{in: "1.2.3.4:x:80", err: true},
		{in: "", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePortMapping(tc.in)
			if tc.err {
				if !errors.Is(err, ErrBadPortMapping) {
					t.Errorf("ParsePortMapping(%q) = %+v, %v, want ErrBadPortMapping", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParsePortMapping(%q) = %+v, %v, want %+v", tc.in, got, err, tc.want)
			}
			if back, err := ParsePortMapping(got.String()); err != nil || back != got {
				t.Errorf("ParsePortMapping(%q.String() = %q) = %+v, %v", tc.in, got.String(), back, err)
			}
		})
	}
}
