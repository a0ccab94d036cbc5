package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of /proc/PID/stat's CPU times (100
// on every architecture Go runs on with Linux).
const clockTick = 10 * time.Millisecond

// labSampler follows the lab's own processes — its mysqld and mysqld_safe
// (the nodes and the clone instances), its routers (`flow lab
// serve-dbscale`), its sshd and everything they run (SSH sessions, the
// commands the playbooks send) — by reading /proc every interval: their CPU
// time and their memory. A process belongs to the lab when its command line
// names the lab folder (flow's own commands, `flow run`, `flow lab write` …,
// are not the lab) or when a lab process is its ancestor.
//
// CPU is each process's own user + system time, the largest value seen per
// pid, so that a process that exits between two readings keeps what it had
// used at the last one (it loses at most one interval; children are not
// counted through their parent's cutime, which would count them twice).
// Memory is the sum of the processes' PSS (smaps_rollup: shared pages,
// the mysqld binary's, counted once across processes, so it is the RAM the
// lab takes) and, for comparison, of their RSS.
type labSampler struct {
	dir      string
	interval time.Duration

	mu       sync.Mutex
	cpu      map[int]time.Duration
	pss, rss uint64 // at the last reading
	peakPSS  uint64 // since the last ResetPeak
	peakRSS  uint64
	procs    int

	done chan struct{}
	wg   sync.WaitGroup
}

// newLabSampler starts reading /proc every interval for the lab in dir.
func newLabSampler(dir string, interval time.Duration) *labSampler {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	s := &labSampler{dir: abs, interval: interval, cpu: map[int]time.Duration{}, done: make(chan struct{})}
	s.sample()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

// Stop ends the readings.
func (s *labSampler) Stop() { close(s.done); s.wg.Wait() }

// labReading is what the sampler knows at one moment.
type labReading struct {
	// CPU is the lab's processes' CPU time so far (since the sampler began).
	CPU time.Duration
	// PSS and RSS are the memory at the last reading; PeakPSS and PeakRSS
	// the largest since the last ResetPeak.
	PSS, RSS, PeakPSS, PeakRSS uint64
	// Procs is how many processes the last reading found.
	Procs int
	// Busy is the machine's busy CPU time so far (all processes, /proc/stat).
	Busy time.Duration
}

// Now reads the processes once more and returns the totals.
func (s *labSampler) Now() labReading {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	var cpu time.Duration
	for _, c := range s.cpu {
		cpu += c
	}
	return labReading{CPU: cpu, PSS: s.pss, RSS: s.rss, PeakPSS: s.peakPSS, PeakRSS: s.peakRSS, Procs: s.procs, Busy: machineBusy()}
}

// ResetPeak starts a new peak from the current memory.
func (s *labSampler) ResetPeak() {
	s.mu.Lock()
	s.peakPSS, s.peakRSS = s.pss, s.rss
	s.mu.Unlock()
}

// sample reads /proc once.
func (s *labSampler) sample() {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	type proc struct {
		ppid int
		cpu  time.Duration
		lab  bool
	}
	procs := map[int]*proc{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, cpu, ok := procStat(pid)
		if !ok {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		procs[pid] = &proc{ppid: ppid, cpu: cpu, lab: isLabCommand(cmd, s.dir)}
	}
	inLab := func(pid int) bool {
		for depth := 0; pid > 1 && depth < 64; depth++ {
			p := procs[pid]
			if p == nil {
				return false
			}
			if p.lab {
				return true
			}
			pid = p.ppid
		}
		return false
	}
	var pss, rss uint64
	n := 0
	cpu := map[int]time.Duration{}
	for pid, p := range procs {
		if !inLab(pid) {
			continue
		}
		n++
		cpu[pid] = p.cpu
		ps, rs := procMemory(pid)
		pss += ps
		rss += rs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for pid, c := range cpu {
		if c > s.cpu[pid] {
			s.cpu[pid] = c
		}
	}
	s.pss, s.rss, s.procs = pss, rss, n
	s.peakPSS = max(s.peakPSS, pss)
	s.peakRSS = max(s.peakRSS, rss)
}

// isLabCommand reports whether a command line (NUL-separated) is one of the
// lab's daemons: it names the lab folder and is not a flow command other
// than the router (`flow lab serve-dbscale`).
func isLabCommand(cmdline []byte, dir string) bool {
	if !bytes.Contains(cmdline, []byte(dir)) {
		return false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if filepath.Base(args[0]) == "flow" {
		return len(args) >= 3 && args[1] == "lab" && args[2] == "serve-dbscale"
	}
	return true
}

// procStat reads a process's parent and its own CPU time (utime + stime).
func procStat(pid int) (ppid int, cpu time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// the command name is in parentheses and may hold spaces
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is the state (field 3), f[1] ppid (4), f[11] utime (14), f[12] stime (15)
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ppid, time.Duration(ut+st) * clockTick, true
}

// procMemory reads a process's PSS and RSS in bytes (0 when unknown).
func procMemory(pid int) (pss, rss uint64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "Pss:":
			pss = kb * 1024
		case "Rss:":
			rss = kb * 1024
		}
	}
	return pss, rss
}

// machineBusy is the machine's CPU time not idle or waiting on I/O, summed
// over its cores (/proc/stat's first line).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 3 || i == 4 || i >= 7 { // idle, iowait; steal, guest (guest is in user already)
			continue
		}
		busy += n
	}
	return time.Duration(busy) * clockTick
}

// cores is the machine's CPU count, for the shares.
func cores() int { return runtime.NumCPU() }
