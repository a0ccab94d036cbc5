// Package secret keeps the set of secret values a run knows (passwords from
// the config, parameters marked secret, generated credentials) and masks them
// in any text before it reaches a log, an event, a journal, an error or a
// dry-run listing.
package secret

import (
	"sort"
	"strings"
	"sync"
)

// Mask is what a secret is replaced with.
const Mask = "******"

// minLen is the shortest value masked by text replacement; shorter secrets
// are still masked wherever a template marks them secret, but replacing every
// occurrence of, say, "1" in all output would destroy the output.
const minLen = 4

// Masker replaces known secret values with Mask. The zero value is ready.
type Masker struct {
	mu       sync.RWMutex
	values   []string
	replacer *strings.Replacer
}

// Add registers secret values.
func (m *Masker) Add(values ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for _, v := range values {
		if len(v) < minLen {
			continue
		}
		dup := false
		for _, have := range m.values {
			if have == v {
				dup = true
				break
			}
		}
		if !dup {
			m.values = append(m.values, v)
			changed = true
		}
	}
	if changed {
		// longest first so a secret containing another is masked whole
		sort.Slice(m.values, func(i, j int) bool { return len(m.values[i]) > len(m.values[j]) })
		pairs := make([]string, 0, 2*len(m.values))
		for _, v := range m.values {
			pairs = append(pairs, v, Mask)
		}
		m.replacer = strings.NewReplacer(pairs...)
	}
}

// Apply returns s with every known secret masked.
func (m *Masker) Apply(s string) string {
	if m == nil {
		return s
	}
	m.mu.RLock()
	r := m.replacer
	m.mu.RUnlock()
	if r == nil {
		return s
	}
	return r.Replace(s)
}

// Len reports how many secrets are registered.
func (m *Masker) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.values)
}

// LooksSecret reports whether a configuration key names a secret
// (password, passwd, secret, passphrase, token).
func LooksSecret(key string) bool {
	k := strings.ToLower(key)
	for _, w := range []string{"password", "passwd", "secret", "passphrase", "token"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
