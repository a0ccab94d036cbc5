package mysqltest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestHelperDiesWithAServer is run by TestReapCleansUpAfterADeadTestProcess
// in a child process: it starts a server, reports it and dies by SIGKILL, so
// that no Cleanup runs.
func TestHelperDiesWithAServer(t *testing.T) {
	if os.Getenv("FLOW_MYSQLTEST_HELPER") != "1" {
		t.Skip("helper process only")
	}
	s := Start(t)
	pid, err := s.Inst.MysqldPID()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("SERVER %s %s %d %d\n", s.Host, s.Inst.Root, pid, s.Inst.SupervisorPID())
	os.Stdout.Sync()
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
}

func TestReapCleansUpAfterADeadTestProcess(t *testing.T) {
	NeedMySQL(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDiesWithAServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FLOW_MYSQLTEST_HELPER=1")
	out, _ := cmd.Output() // it dies by SIGKILL
	var host, root string
	var mysqld, safe int
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 5 && f[0] == "SERVER" {
			host, root = f[1], f[2]
			mysqld, _ = strconv.Atoi(f[3])
			safe, _ = strconv.Atoi(f[4])
		}
	}
	if host == "" || mysqld == 0 || safe == 0 {
		t.Fatalf("the helper did not report a server:\n%s", out)
	}
	if !isLive(mysqld) || !isLive(safe) {
		t.Fatalf("the orphaned server is not running (mysqld %d, mysqld_safe %d)", mysqld, safe)
	}
	t.Cleanup(func() { // in case reap fails
		_ = syscall.Kill(safe, syscall.SIGKILL)
		_ = syscall.Kill(mysqld, syscall.SIGKILL)
	})
	reap()
	if isLive(mysqld) || isLive(safe) {
		t.Errorf("reap left mysqld %d (%v) or mysqld_safe %d (%v) running", mysqld, isLive(mysqld), safe, isLive(safe))
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("reap left %s (%v)", root, err)
	}
	if _, err := os.Stat(filepath.Join(lockDir(), host+".lock")); !os.IsNotExist(err) {
		t.Errorf("reap left the lock file of %s (%v)", host, err)
	}
}
