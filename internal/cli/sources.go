package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/flowdba/flow/engine"
	"github.com/pmezard/go-difflib/difflib"
)

// sourcesFile lists the playbook files a run used, with their hashes; the
// files themselves are kept next to it, so a resume can name what changed.
const sourcesFile = "sources.json"

// sourceEntry is one playbook file a run used.
type sourceEntry struct {
	Path   string `json:"path"` // absolute
	SHA256 string `json:"sha256"`
	Copy   string `json:"copy"` // file name of the copy in the run folder's sources/
}

// saveSources keeps a copy of the playbook and of every playbook it
// includes in the run's folder.
func saveSources(runDir string, pb *engine.Playbook) error {
	dir := filepath.Join(runDir, "sources")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	var list []sourceEntry
	seen := map[string]bool{}
	var walk func(p *engine.Playbook)
	walk = func(p *engine.Playbook) {
		if seen[p.Abs] {
			return
		}
		seen[p.Abs] = true
		name := fmt.Sprintf("%02d-%s", len(list), filepath.Base(p.Abs))
		list = append(list, sourceEntry{Path: p.Abs, SHA256: p.Hash, Copy: name})
		_ = os.WriteFile(filepath.Join(dir, name), p.Source, 0o640)
		keys := make([]string, 0, len(p.Includes))
		for k := range p.Includes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(p.Includes[k])
		}
	}
	walk(pb)
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(runDir, sourcesFile), append(b, '\n'), 0o640)
}

// changedSources compares the playbook files a run used with the files on
// disk now: one line per changed file, with a short unified diff.
func changedSources(runDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(runDir, sourcesFile))
	if err != nil {
		return nil, fmt.Errorf("the run kept no copy of its playbooks (%v): it cannot be checked for changes", err)
	}
	var list []sourceEntry
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(runDir, sourcesFile), err)
	}
	var out []string
	for _, e := range list {
		now, err := os.ReadFile(e.Path)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", e.Path, err))
			continue
		}
		sum := sha256.Sum256(now)
		if hex.EncodeToString(sum[:]) == e.SHA256 {
			continue
		}
		was, _ := os.ReadFile(filepath.Join(runDir, "sources", e.Copy))
		diff, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(string(was)), B: difflib.SplitLines(string(now)),
			FromFile: e.Path + " (as the run used it)", ToFile: e.Path + " (now)", Context: 1})
		lines := strings.Split(strings.TrimRight(diff, "\n"), "\n")
		if len(lines) > 40 {
			lines = append(lines[:40], fmt.Sprintf("… %d more diff lines", len(lines)-40))
		}
		out = append(out, fmt.Sprintf("%s changed since the run (sha256 %s… → %s…):\n    %s", e.Path, e.SHA256[:12], hex.EncodeToString(sum[:])[:12], strings.Join(lines, "\n    ")))
	}
	return out, nil
}
