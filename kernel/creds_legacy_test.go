package kernel

import (
	"reflect"
	"slices"
	"testing"
)

// TestAdoptLegacyCreds: a thread loaded from a 1.0 image, which saved one
// set of IDs per process, gets them with the filesystem IDs following the
// effective ones, every capability if its effective UID is 0 and none
// otherwise, and the process's legacy copy is cleared.
func TestAdoptLegacyCreds(t *testing.T) {
	cases := []struct {
		name   string
		legacy credentials
		want   credentials
	}{
		{"root", credentials{},
			credentials{CapEffective: capAll, CapPermitted: capAll, CapBounding: capAll}},
		{"user", credentials{UID: 1000, EUID: 1001, SUID: 1002, GID: 100, EGID: 101, SGID: 102},
			credentials{UID: 1000, EUID: 1001, SUID: 1002, FSUID: 1001, GID: 100, EGID: 101, SGID: 102, FSGID: 101, CapBounding: capAll}},
		{"setuid root", credentials{UID: 1000, EUID: 0, SUID: 0, GID: 100, EGID: 100, SGID: 100},
			credentials{UID: 1000, SUID: 0, GID: 100, EGID: 100, SGID: 100, FSGID: 100,
				CapEffective: capAll, CapPermitted: capAll, CapBounding: capAll}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			task := newUnitTask(t)
			task.creds = credentials{} // as loaded: the field was not in the image
			task.tg.creds = tc.legacy
			task.k.adoptLegacyCreds()
			if got := task.creds; !credsEqual(got, tc.want) {
				t.Errorf("adoptLegacyCreds(%+v) = %+v, want %+v", tc.legacy, got, tc.want)
			}
			if !credsEqual(task.tg.creds, credentials{}) {
				t.Errorf("legacy process creds left = %+v, want zero", task.tg.creds)
			}
		})
	}
}

func credsEqual(a, b credentials) bool {
	if !slices.Equal(a.Groups, b.Groups) {
		return false
	}
	a.Groups, b.Groups = nil, nil
	return reflect.DeepEqual(a, b)
}
