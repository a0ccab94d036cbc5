package steps_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/flowdba/flow/conn/sshtest"
	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/steps"
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
	res := enginetest.Run(t, sshPlaybook, enginetest.Options{Vars: sshVars(t, srv), SSHDial: steps.DialSSH})
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
	res := enginetest.Run(t, pb, enginetest.Options{Vars: sshVars(t, srv), SSHDial: steps.DialSSH})
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
	res = enginetest.Run(t, pb, enginetest.Options{Vars: vars, SSHDial: steps.DialSSH})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "known_hosts") {
		t.Fatalf("an unknown host key was accepted or the error does not say what to do: %v", res.Err)
	}
}
