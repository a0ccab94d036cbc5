package sshconn

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Defaults applied to zero fields of a [Config].
const (
	// DefaultPort is the SSH port used when Config.Port is 0.
	DefaultPort = 22
	// DefaultConnectTimeout bounds TCP connect plus handshake when
	// Config.ConnectTimeout is 0.
	DefaultConnectTimeout = 15 * time.Second
	// DefaultKeepaliveInterval is the keepalive period when
	// Config.KeepaliveInterval is 0.
	DefaultKeepaliveInterval = 15 * time.Second
)

// Config says how to reach and authenticate to one SSH server.
//
// Its String and GoString methods print only user@host:port, so a Config can
// be formatted with any verb without revealing Password.
type Config struct {
	// Host is the server's name or IP address, exactly as written in
	// KnownHostsFile (e.g. "127.0.0.2" for an entry "[127.0.0.2]:2222").
	Host string
	// Port is the server's TCP port; 0 means 22.
	Port int
	// User is the remote login name.
	User string
	// KeyFile is the path of an unencrypted private key in OpenSSH or PEM
	// format. It must not be readable by group or others.
	KeyFile string
	// Password enables password authentication. It is a secret: it never
	// appears in errors or formatted output.
	Password string
	// KnownHostsFile is the known_hosts file the host key is verified
	// against. It is required: host keys are always verified.
	KnownHostsFile string
	// ConnectTimeout bounds TCP connect plus SSH handshake (the context
	// passed to Dial bounds them too); 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// KeepaliveInterval is the period of keepalive@openssh.com requests; 0
	// means DefaultKeepaliveInterval, a negative value disables keepalives.
	// Three unanswered keepalives in a row close the connection.
	KeepaliveInterval time.Duration
}

// port returns the effective port.
func (c Config) port() int {
	if c.Port == 0 {
		return DefaultPort
	}
	return c.Port
}

// Addr returns host:port as dialled and as looked up in known_hosts.
func (c Config) Addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.port()))
}

// String returns user@host:port. It never includes the password.
func (c Config) String() string {
	return c.User + "@" + c.Addr()
}

// GoString is like String, so that %#v does not reveal the password either.
func (c Config) GoString() string {
	return "sshconn.Config(" + c.String() + ")"
}

// validate checks the fields Dial needs and lists every problem.
func (c Config) validate() error {
	var problems []string
	if c.Host == "" {
		problems = append(problems, "Host is empty")
	}
	if c.Port < 0 || c.Port > 65535 {
		problems = append(problems, fmt.Sprintf("Port %d is out of range", c.Port))
	}
	if c.User == "" {
		problems = append(problems, "User is empty")
	}
	if c.KnownHostsFile == "" {
		problems = append(problems, "KnownHostsFile is empty (host keys are always verified)")
	}
	if c.KeyFile == "" && c.Password == "" {
		problems = append(problems, "neither KeyFile nor Password is set")
	}
	if c.ConnectTimeout < 0 {
		problems = append(problems, fmt.Sprintf("ConnectTimeout %s is negative", c.ConnectTimeout))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// key identifies the server and login a Config is for (used by Pool).
type key struct {
	user, host string
	port       int
}

func (c Config) key() key { return key{c.User, c.Host, c.port()} }
