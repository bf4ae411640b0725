package main

// The driver's state: which volumes, snapshots and group snapshots exist, kept in state.json beside the data so
// that a restarted driver answers the sidecars' idempotent retries the same way. One mutex serialises every
// change, which is also what makes a group snapshot one point in time for this driver.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

type volume struct {
	CapacityBytes int64 `json:"capacityBytes"`
	// SourceSnapshot or SourceVolume names what the volume was filled from, so that a retried CreateVolume with a
	// different source is refused as CSI requires.
	SourceSnapshot string `json:"sourceSnapshot,omitempty"`
	SourceVolume   string `json:"sourceVolume,omitempty"`
}

type snapshot struct {
	SourceVolume string    `json:"sourceVolume"`
	SizeBytes    int64     `json:"sizeBytes"`
	Created      time.Time `json:"created"`
	Group        string    `json:"group,omitempty"`
}

type group struct {
	SourceVolumes []string  `json:"sourceVolumes"`
	Snapshots     []string  `json:"snapshots"`
	Created       time.Time `json:"created"`
}

type state struct {
	Volumes   map[string]*volume   `json:"volumes"`
	Snapshots map[string]*snapshot `json:"snapshots"`
	Groups    map[string]*group    `json:"groups"`
}

type store struct {
	mu  sync.Mutex
	dir string
	st  state
}

func openStore(dir string) (*store, error) {
	for _, sub := range []string{"volumes", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	s := &store{dir: dir, st: state{
		Volumes:   map[string]*volume{},
		Snapshots: map[string]*snapshot{},
		Groups:    map[string]*group{},
	}}
	data, err := os.ReadFile(s.statePath())
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &s.st); err != nil {
		return nil, fmt.Errorf("%s: %w", s.statePath(), err)
	}
	return s, nil
}

func (s *store) statePath() string { return filepath.Join(s.dir, "state.json") }

// VolumePath is where a volume's files live; whatever runs a pod mounts this directory.
func (s *store) volumePath(id string) string { return filepath.Join(s.dir, "volumes", id) }

// SnapshotPath is the tar file that holds a snapshot's files.
func (s *store) snapshotPath(id string) string { return filepath.Join(s.dir, "snapshots", id+".tar") }

// save writes state.json atomically; the caller holds mu.
func (s *store) save() error {
	data, err := json.MarshalIndent(&s.st, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.statePath() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.statePath())
}

// The sidecars name objects "pvc-<uid>", "snapshot-<uid>" and "groupsnapshot-<uid>", unique by the CSI contract,
// so a name doubles as the ID and as a file name. Anything else is refused rather than joined into a path.
var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$`)

func checkName(what, name string) error {
	if !safeName.MatchString(name) {
		return fmt.Errorf("%s name %q: want letters, digits, '.', '_' or '-' (at most 201)", what, name)
	}
	return nil
}
