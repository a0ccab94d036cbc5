package engine

import (
	"context"
	"net"
	"time"
)

// Target selects where a step runs: a named connection of the playbook,
// optionally with the host and port overridden (a node discovered at run
// time).
type Target struct {
	On   string `yaml:"on"`
	Host *Value `yaml:"host"`
	Port *Value `yaml:"port"`
	// At gives the node as one value instead of host and port: a mapping
	// with host (and port), such as a row of `dbscale show dataservers`, or
	// "host:port". On an ssh step only its host counts (the port is the
	// connection's SSH port).
	At   *Value `yaml:"at"`
	conn *Conn
}

// MySQLTarget is a Target that must name a mysql connection.
type MySQLTarget Target

// SSHTarget is a Target that must name an ssh connection.
type SSHTarget Target

func (t *MySQLTarget) target() *Target { return (*Target)(t) }
func (t *SSHTarget) target() *Target   { return (*Target)(t) }

// SSHClient is what the engine needs from an SSH connection.
type SSHClient interface {
	// Run runs cmd; stdin (which may hold secrets) is fed to it. A non-zero
	// exit status is reported in rc, not as an error.
	Run(ctx context.Context, cmd string, stdin []byte) (stdout, stderr string, rc int, err error)
	// DialTCP opens a TCP connection from the remote host (a tunnel).
	DialTCP(ctx context.Context, addr string) (net.Conn, error)
}

// SSHStarter is implemented by SSH clients that can start a command and
// tell its remote pid before it ends (DialSSH's clients do). The ssh step
// uses it for state-changing commands, so that the journal knows which
// remote process to wait for if flow dies while the command runs.
type SSHStarter interface {
	// Start starts cmd as SSHClient.Run does and returns once the
	// remote pid is known; ctx governs the command's whole life.
	Start(ctx context.Context, cmd string, stdin []byte) (SSHProcess, error)
}

// SSHProcess is a remote command started by SSHStarter.Start.
type SSHProcess interface {
	// Pid is the remote process id of the shell running the command; it
	// leads the command's process group.
	Pid() int
	// Wait waits for the command to end and reports it as
	// SSHClient.Run does.
	Wait() (stdout, stderr string, rc int, err error)
}

// SSHParams are the resolved fields of an ssh connection.
type SSHParams struct {
	Host, User, KeyFile, Password, KnownHosts string
	Port                                      int
	ConnectTimeout                            time.Duration
	// Reconnected, when set, is called after the dialer replaced a
	// connection that had ended (why: how it ended), so the run's log
	// says that a later command went over a new connection.
	Reconnected func(why error)
}

// SSHDialer opens SSH connections; the CLI installs the real one.
type SSHDialer func(ctx context.Context, p SSHParams) (SSHClient, error)
