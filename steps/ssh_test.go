package steps_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/conn/sshdial"
	"github.com/flowdba/flow/conn/sshtest"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/lab/sshd"
	"github.com/flowdba/flow/lab/sshd/sshdtest"
)

const sshPlaybook = `name: ssh-test
params:
  port: {type: int, required: true}
  key: {type: string, required: true}
  known: {type: string, required: true}
  token: {type: string, default: "tok-3141592653", secret: true}
  path: {type: string, default: "/tmp/a b; rm -rf /tmp/nothing-$(id)"}
connections:
  box: {ssh: {host: 127.0.0.1, port: "{{ port }}", user: flow, key_file: "{{ key }}", known_hosts: "{{ known }}"}}
steps:
  - name: Step 01 echo a hostile path
    ssh: {on: box, command: "printf %s {{ path }}", changes: false}
    register: p
  - assert:
      that: p.stdout == path
      message: "the shell split or expanded the value: {{ p.stdout }}"
  - name: Step 02 secret on stdin
    ssh: {on: box, command: "read -r t; test ${#t} -eq 14 && echo got-it", stdin: "{{ token }}", changes: false}
    register: s
  - assert:
      that: s.lines == ["got-it"]
  - name: Step 03 exit code
    ssh: {on: box, command: "echo oops >&2; exit 3", ok_codes: [0, 3], changes: false}
    register: e
  - assert:
      that: e.rc == 3 && trim(e.stderr) == "oops"
`

func sshVars(t *testing.T, srv *sshtest.Server) map[string]string {
	return map[string]string{"port": strconv.Itoa(srv.Port), "key": srv.ClientKeyFile(t), "known": srv.KnownHostsFile(t)}
}

// TestSSHStep runs commands through the in-process SSH server: a hostile
// value stays one word, a secret on stdin never reaches the log, and exit
// codes and stderr are captured.
func TestSSHStep(t *testing.T) {
	srv := sshtest.Start(t)
	res := enginetest.Run(t, sshPlaybook, enginetest.Options{Vars: sshVars(t, srv), SSHDial: sshdial.Dial})
	if res.Err != nil {
		t.Fatalf("run: %v\n%s", res.Err, res.Log)
	}
	if strings.Contains(res.Log, "tok-3141592653") {
		t.Fatalf("secret in the log:\n%s", res.Log)
	}
	if !strings.Contains(res.Log, `[DEBUG] printf %s '/tmp/a b; rm -rf /tmp/nothing-$(id)'`) {
		t.Fatalf("command not logged quoted:\n%s", res.Log)
	}
}

// TestSSHStepFailureAndUnknownHost checks a failing command's error names
// host, command and stderr, and an unverified host key is refused.
func TestSSHStepFailureAndUnknownHost(t *testing.T) {
	srv := sshtest.Start(t)
	pb := `name: ssh-fail
params:
  port: {type: int, required: true}
  key: {type: string, required: true}
  known: {type: string, required: true}
connections:
  box: {ssh: {host: 127.0.0.1, port: "{{ port }}", user: flow, key_file: "{{ key }}", known_hosts: "{{ known }}"}}
steps:
  - name: Step 01 fail
    ssh: {on: box, command: "echo no space left >&2; exit 2"}
    pre: true
`
	res := enginetest.Run(t, pb, enginetest.Options{Vars: sshVars(t, srv), SSHDial: sshdial.Dial})
	if engine.ExitCode(res.Err) != engine.ExitStepFailed {
		t.Fatalf("exit %d: %v", engine.ExitCode(res.Err), res.Err)
	}
	for _, want := range []string{"Step 01 fail", srv.Addr(), "exited with 2", "no space left"} {
		if !strings.Contains(res.Err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, res.Err)
		}
	}
	other := sshtest.Start(t) // a host whose key is not in known_hosts
	vars := sshVars(t, srv)
	vars["port"] = strconv.Itoa(other.Port)
	res = enginetest.Run(t, pb, enginetest.Options{Vars: vars, SSHDial: sshdial.Dial})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "known_hosts") {
		t.Fatalf("an unknown host key was accepted or the error does not say what to do: %v", res.Err)
	}
}

const sshResumePlaybook = `name: ssh-resume
params:
  port: {type: int, required: true}
  key: {type: string, required: true}
  known: {type: string, required: true}
connections:
  box: {ssh: {host: 127.0.0.1, port: "{{ port }}", user: flow, key_file: "{{ key }}", known_hosts: "{{ known }}"}}
steps:
  - name: Step 01 long command
    register: out
    interval: 100ms
    timeout: 1m
    ssh: {on: box, command: "echo $$; sleep 2"}
`

// localProc reads this machine's boot id and the start time (field 22)
// of pid from /proc ("" when there is no such process): the sshtest
// server runs its commands on this machine.
func localProc(t *testing.T, pid int) (boot, start string) {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return strings.TrimSpace(string(b)), ""
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if f[0] == "Z" {
		return strings.TrimSpace(string(b)), ""
	}
	return strings.TrimSpace(string(b)), f[19]
}

// TestSSHResume: a state-changing command's remote pid, host and start
// time are noted as soon as it starts; a resumed run waits for that
// process while it still runs (joined), then asks the operator, since
// flow cannot tell what a shell command did. A pid whose start time
// differs (reused) is not waited for, and the wait is bounded.
func TestSSHResume(t *testing.T) {
	srv := sshtest.Start(t)
	vars := sshVars(t, srv)
	key := stepKey(t, sshResumePlaybook, "Step 01 long command")
	host := fmt.Sprintf("ssh box (%s)", srv.Addr())

	t.Run("pid noted, still-running command joined, then the operator is asked", func(t *testing.T) {
		noted := make(chan map[string]any, 1)
		ev := &journalEvents{on: func(name string, f map[string]any) {
			if name == "step_note" {
				noted <- f
			}
		}}
		firstDone := make(chan *attempt, 1)
		pb := enginetest.Load(t, enginetest.Write(t, sshResumePlaybook, nil))
		go func() { firstDone <- runLoaded(pb, vars, sshdial.Dial, nil, time.Minute, ev, "first") }()
		var note map[string]any
		select {
		case note = <-noted:
		case first := <-firstDone:
			t.Fatalf("the first attempt noted nothing: %v\n%s", first.Err, first.Log)
		case <-time.After(30 * time.Second):
			t.Fatal("no step_note within 30s")
		}
		pid, _ := note["remote_pid"].(int)
		boot, start := localProc(t, pid)
		if pid <= 0 || note["remote_host"] != host || note["remote_start"] != start || start == "" || note["remote_boot"] != boot {
			t.Fatalf("note %v; the process: pid %d, boot %s, start %q", note, pid, boot, start)
		}
		// the first attempt's command still runs: resume as if that
		// attempt had died here
		rs := ev.state()
		if rec := rs.Steps[key]; rec == nil || rec.Status != engine.StepStarted || len(rec.Sent) != 1 {
			t.Fatalf("journal state of %s: %+v", key, rs.Steps[key])
		}
		res := runAttempt(t, sshResumePlaybook, vars, sshdial.Dial, rs, time.Minute, nil)
		if _, now := localProc(t, pid); now == start {
			t.Fatalf("the resumed run returned while the command (pid %d) still ran: %v", pid, res.Err)
		}
		joined := res.Events.named("step_joined")
		if len(joined) != 1 || !strings.Contains(fmt.Sprint(joined[0]["why"]), fmt.Sprintf("pid %d", pid)) {
			t.Fatalf("step_joined events %v\n%s", joined, res.Log)
		}
		res.wantAsked(t, key, "it is a shell command, whose effect flow cannot see", fmt.Sprintf("it ran as pid %d on %s", pid, host), "echo $$; sleep 2")
		if !strings.Contains(res.Log, fmt.Sprintf("the command an earlier attempt started (pid %d) is still running", pid)) {
			t.Errorf("the wait was not logged:\n%s", res.Log)
		}
		first := <-firstDone
		if first.Err != nil {
			t.Fatalf("first attempt: %v\n%s", first.Err, first.Log)
		}
		if out := first.Events.named("step_finished"); len(out) == 0 {
			t.Fatal("the first attempt did not finish its step")
		} else if o, _ := out[0]["output"].(map[string]any); o == nil || strings.TrimSpace(strings.SplitN(fmt.Sprint(o["stdout"]), "\n", 2)[0]) != strconv.Itoa(pid) {
			t.Fatalf("the command's own $$ is not the noted pid %d: %v", pid, out[0]["output"])
		}
	})

	// a local process stands for the remote one (the server runs on this
	// machine)
	sleeper := func(t *testing.T) (pid int, boot, start string) {
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		boot, start = localProc(t, cmd.Process.Pid)
		return cmd.Process.Pid, boot, start
	}
	rec := func(pid int, boot, start string) *engine.StepRecord {
		return &engine.StepRecord{Key: key, Status: engine.StepStarted, Started: time.Now().Add(-time.Minute),
			Sent:  []string{host + ": echo $$; sleep 2"},
			Notes: map[string]any{"remote_pid": float64(pid), "remote_host": host, "remote_start": start, "remote_boot": boot}}
	}

	t.Run("a reused pid is not waited for", func(t *testing.T) {
		pid, boot, start := sleeper(t)
		n, _ := strconv.Atoi(start)
		res := runAttempt(t, sshResumePlaybook, vars, sshdial.Dial, resumeWith(rec(pid, boot, strconv.Itoa(n-1))), time.Minute, nil)
		if j := res.Events.named("step_joined"); len(j) != 0 {
			t.Fatalf("waited for another process with the same pid: %v", j)
		}
		res.wantAsked(t, key)
		res = runAttempt(t, sshResumePlaybook, vars, sshdial.Dial, resumeWith(rec(pid, "another-boot", start)), time.Minute, nil)
		if j := res.Events.named("step_joined"); len(j) != 0 {
			t.Fatalf("waited for a process of another boot: %v", j)
		}
		res.wantAsked(t, key)
	})

	t.Run("the wait is bounded", func(t *testing.T) {
		pid, boot, start := sleeper(t)
		res := runAttempt(t, sshResumePlaybook, vars, sshdial.Dial, resumeWith(rec(pid, boot, start)), 2*time.Second, nil)
		if res.Err == nil || !strings.Contains(res.Err.Error(), fmt.Sprintf("(pid %d) was still running after", pid)) ||
			!strings.Contains(res.Err.Error(), fmt.Sprintf("kill -- -%d", pid)) {
			t.Fatalf("want a bounded wait naming pid %d: %v\n%s", pid, res.Err, res.Log)
		}
		if _, now := localProc(t, pid); now != start {
			t.Fatal("the process was touched")
		}
	})
}

// BenchmarkSSHStepOpenSSH measures an ssh step against a real OpenSSH
// server: a read-only command (one session) and a state-changing one
// (its session plus the read of the remote process's start time for the
// journal, done while the command runs). The metric is per step.
func BenchmarkSSHStepOpenSSH(b *testing.B) {
	srv := sshdtest.Start(b, "127.0.0.224")
	const n = 20
	for _, changes := range []bool{false, true} {
		b.Run(fmt.Sprintf("changes=%v", changes), func(b *testing.B) {
			var y strings.Builder
			fmt.Fprintf(&y, `name: bench
connections:
  box: {ssh: {host: 127.0.0.224, port: %d, user: %s, key_file: %q, known_hosts: %q}}
steps:
`, srv.Port, srv.User, srv.ClientKeyFile, srv.KnownHostsFile)
			for i := range n {
				fmt.Fprintf(&y, "  - name: Step %02d\n    pre: true\n    ssh: {on: box, command: \"true\", changes: %v}\n", i, changes)
			}
			pb := enginetest.Load(b, enginetest.Write(b, y.String(), nil))
			for b.Loop() {
				if a := runLoaded(pb, nil, sshdial.Dial, nil, time.Minute, nil, "bench"); a.Err != nil {
					b.Fatalf("%v\n%s", a.Err, a.Log)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/step")
		})
	}
}

// TestSSHStepPasswordOpenSSH runs an ssh step against a real OpenSSH
// server that takes a password (as sites and `flow lab up --ssh-password`
// do): the connection's password key logs in with no key file, the host key
// is still verified, and the password (a secret param) never reaches the
// log, not even when a command fails.
func TestSSHStepPasswordOpenSSH(t *testing.T) {
	pw := "pw-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-x"
	srv := sshdtest.StartWith(t, sshd.Options{Password: pw}, "127.0.0.225")
	playbook := `name: ssh-password
params:
  port: {type: int, required: true}
  user: {type: string, required: true}
  pw: {type: string, required: true, secret: true}
  known: {type: string, required: true}
connections:
  box: {ssh: {host: 127.0.0.225, port: "{{ port }}", user: "{{ user }}", password: "{{ pw }}", known_hosts: "{{ known }}"}}
steps:
  - name: Step 01 who am I
    ssh: {on: box, command: "id -un", changes: false}
    register: who
  - assert:
      that: trim(who.stdout) == user
  - name: Step 02 a state-changing command (its remote pid is journalled)
    ssh: {on: box, command: "echo changed", changes: true}
    register: c
  - assert:
      that: c.lines == ["changed"]
`
	vars := map[string]string{"port": strconv.Itoa(srv.Port), "user": srv.User, "pw": pw, "known": srv.KnownHostsFile}
	res := enginetest.Run(t, playbook, enginetest.Options{Vars: vars, SSHDial: sshdial.Dial})
	if res.Err != nil {
		t.Fatalf("run: %v\n%s", res.Err, res.Log)
	}
	if strings.Contains(res.Log, pw) {
		t.Fatalf("the password is in the log:\n%s", res.Log)
	}
	vars["pw"] = pw + "-wrong"
	res = enginetest.Run(t, playbook, enginetest.Options{Vars: vars, SSHDial: sshdial.Dial})
	if res.Err == nil {
		t.Fatalf("a wrong password logged in:\n%s", res.Log)
	}
	if strings.Contains(res.Log, pw) || strings.Contains(res.Err.Error(), pw) {
		t.Fatalf("the password is in the log or error: %v\n%s", res.Err, res.Log)
	}
	if !strings.Contains(res.Err.Error()+res.Log, "unable to authenticate") {
		t.Errorf("want an authentication error, got %v\n%s", res.Err, res.Log)
	}
}
