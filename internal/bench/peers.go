package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// peer is a test peer that testenv/start.sh started: its process (for its
// memory) and its data folder (for its disk use).
type peer struct {
	name string
	pid  int
	data string
}

// findPeers reads the pid files testenv/start.sh writes in runDir
// (orthanc.pid, fhir.pid). A peer whose pid file is missing, or whose
// process no longer names runDir on its command line (a pid reused by
// another process), is left out.
func findPeers(runDir string) (orthanc, fhir *peer) {
	if runDir == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(runDir)
	if err != nil {
		return nil, nil
	}
	find := func(name, data string) *peer {
		b, err := os.ReadFile(filepath.Join(abs, name+".pid"))
		if err != nil {
			return nil
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			return nil
		}
		if cmd, err := procCmdline(pid); err != nil || !strings.Contains(cmd, abs+string(filepath.Separator)) {
			return nil
		}
		return &peer{name: name, pid: pid, data: filepath.Join(abs, data)}
	}
	return find("orthanc", filepath.Join("orthanc", "storage")), find("fhir", "fhir")
}

// rss is the peer's resident memory in bytes (0 when p is nil or gone).
func (p *peer) rss() int64 {
	if p == nil {
		return 0
	}
	v, _ := procRSS(p.pid)
	return v
}

// disk is what the peer's data folder takes on disk (0 when p is nil).
func (p *peer) disk() int64 {
	if p == nil {
		return 0
	}
	v, _ := diskUsage(p.data)
	return v
}
