package e2e

import "testing"

// TestKnownBrokenKeys requires every knownBroken key to name a case, so that
// a renamed or removed case cannot leave a stale entry behind.
func TestKnownBrokenKeys(t *testing.T) {
	keys := make(map[string]bool)
	for _, lc := range libcs {
		for _, c := range cCases {
			keys[lc.Name+"/"+c.name] = true
			for _, m := range c.zdtm.modes() {
				keys[lc.Name+"/"+c.name+"/zdtm-"+string(m)] = true
			}
		}
		// The zdtm points of the other compare calls: all fast.
		others := []string{"pastdeadline", "scripts", "fexecscript"}
		for _, c := range procfsCases {
			others = append(others, "procfs-"+c.name)
		}
		for _, name := range others {
			keys[lc.Name+"/"+name] = true
			keys[lc.Name+"/"+name+"/zdtm-start"] = true
		}
	}
	for _, name := range []string{"echo", "status", "nested"} {
		keys["scripts/"+name] = true
		keys["scripts/"+name+"/zdtm-start"] = true
	}
	for _, c := range busyboxCases {
		keys["busybox/"+c.name] = true
	}
	for _, c := range makeCases {
		keys["make/"+c.name] = true
	}
	for _, c := range runErrorCases {
		keys["cli/"+c.name] = true
	}
	for _, c := range startCases {
		keys["cli/"+c.name] = true
	}
	keys["python/creds"] = true
	for _, c := range flockToolCases {
		keys["flock/"+c.name] = true
	}
	for _, c := range setprivCases {
		keys["setpriv/"+c.name] = true
	}
	for _, lc := range libcs {
		for _, c := range closedStdoutCases {
			keys["stdout/"+lc.Name+"/"+c.name] = true
		}
	}
	for _, c := range timeoutCases {
		keys["timeout/"+c.name] = true
	}
	keys["cli/no-leak-exit"] = true
	keys["cli/no-leak-sigkill"] = true
	for k, why := range knownBroken {
		if !keys[k] {
			t.Errorf("knownBroken[%q] (%s) names no case", k, why)
		}
		if why == "" {
			t.Errorf("knownBroken[%q] gives no reason", k)
		}
	}
}
