package runner

import (
	"fmt"
	"strings"
)

// StartEnv returns the environment a new sandbox's program starts with:
// base (the caller's environment) or nothing if clear is set, then each
// "KEY=VALUE" of set in order, a later one replacing an earlier variable
// of the same name in place. An entry of set without "=" or with an empty
// name fails with ErrInvalidEnv.
func StartEnv(base []string, clear bool, set []string) ([]string, error) {
	var env []string
	if !clear {
		env = append(env, base...)
	}
	index := make(map[string]int, len(env))
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		index[k] = i
	}
	for _, kv := range set {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--env %q: %w", kv, ErrInvalidEnv)
		}
		if i, dup := index[k]; dup {
			env[i] = kv
			continue
		}
		index[k] = len(env)
		env = append(env, kv)
	}
	return env, nil
}
