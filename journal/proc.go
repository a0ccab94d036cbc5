package journal

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// processStart returns a process's start time in clock ticks since boot
// (field 22 of /proc/PID/stat), or "" where /proc is not available.
func processStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// the command name (field 2) is in parentheses and may hold spaces
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field 22 is f[19]
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// processAlive reports whether the process that wrote a journal still runs
// on this host: its pid exists and, when the journal recorded it, has the
// same start time (a reused pid is another process).
func processAlive(pid int, start string) bool {
	if pid <= 0 {
		return false
	}
	if start != "" {
		if now := processStart(pid); now != "" || procAvailable() {
			return now == start
		}
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func procAvailable() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}
