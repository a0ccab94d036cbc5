// Package sshd runs a real OpenSSH server for integration tests and the lab.
//
// One sshd listens on one port at several loopback addresses (127.0.0.x), so
// every lab node "host" is reached over SSH at its own address. Everything it
// needs lives in one directory: its config, two host keys (ed25519 and
// ECDSA), a client key and the authorized_keys accepting it, a known_hosts
// listing the host keys for every listen address, its log and a state file
// from which Load rebuilds the handle in another process. Logins are by
// public key only, as the user running Start (an unprivileged sshd can only
// log in as itself).
package sshd

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// readyTimeout bounds the wait for a started sshd to answer on every
// address; stopTimeout bounds the wait for it to exit.
const (
	readyTimeout = 15 * time.Second
	stopTimeout  = 10 * time.Second
	pollEvery    = 20 * time.Millisecond
)

// Server is a running sshd. Its fields are the paths and facts a client
// needs; all paths are absolute and inside Dir.
type Server struct {
	Dir            string   `json:"dir"`
	Addrs          []string `json:"addrs"` // listen addresses (IPs)
	Port           int      `json:"port"`
	User           string   `json:"user"` // the login name the client key is accepted for
	Pid            int      `json:"pid"`
	ConfigFile     string   `json:"config_file"`
	LogFile        string   `json:"log_file"`
	KnownHostsFile string   `json:"known_hosts_file"`
	ClientKeyFile  string   `json:"client_key_file"`
	// HostKeyFiles are the public host keys (ed25519 first, then ECDSA).
	HostKeyFiles []string `json:"host_key_files"`

	exited chan struct{} // closed when our child has been reaped; nil after Load
}

// stateFile is where Start records the handle for Load.
const stateFile = "sshd.json"

// Start writes a config for an sshd listening on port at every address in
// listenAddrs (loopback IPs only), with fresh host and client keys, into dir
// (created if needed; existing keys are replaced), starts it in its own
// session and waits, bounded by ctx and 15 s, until every address answers
// with an OpenSSH banner. As root it creates /run/sshd, which sshd needs.
// Errors name the log file and quote its end.
func Start(ctx context.Context, dir string, listenAddrs []string, port int) (*Server, error) {
	if !Installed() {
		return nil, fmt.Errorf("%s is missing: call EnsureInstalled first (needs root), or apt-get install openssh-server", Binary)
	}
	if err := checkAddrs(listenAddrs, port); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := checkPathForConfig(dir); err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("current user: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Server{
		Dir:            dir,
		Addrs:          append([]string(nil), listenAddrs...),
		Port:           port,
		User:           u.Username,
		ConfigFile:     filepath.Join(dir, "sshd_config"),
		LogFile:        filepath.Join(dir, "sshd.log"),
		KnownHostsFile: filepath.Join(dir, "known_hosts"),
		ClientKeyFile:  filepath.Join(dir, "client_ed25519"),
	}
	// Refuse early and clearly when something already listens there
	// (sshd would carry on with the addresses it could bind).
	for _, a := range s.Addrs {
		ln, err := net.Listen("tcp", s.Addr(a))
		if err != nil {
			return nil, fmt.Errorf("sshd cannot listen on %s: %w", s.Addr(a), err)
		}
		_ = ln.Close()
	}
	hostKeys, err := s.writeKeys()
	if err != nil {
		return nil, err
	}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	if err := s.writeKnownHosts(hostKeys); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// Privilege separation directory, normally made by systemd.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("create /run/sshd: %w", err)
		}
	}
	if out, err := exec.CommandContext(ctx, Binary, "-t", "-f", s.ConfigFile).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sshd rejects its config %s: %v: %s", s.ConfigFile, err, strings.TrimSpace(string(out)))
	}
	_ = os.Remove(s.LogFile)

	// -D: stay in the foreground as our child, so we know its pid and
	// reap it; Setsid: detach from our terminal and process group, so it
	// outlives us when the lab wants it to. -E: log to the file.
	cmd := exec.Command(Binary, "-D", "-f", s.ConfigFile, "-E", s.LogFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", Binary, err)
	}
	s.Pid = cmd.Process.Pid
	s.exited = make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		select {
		case <-s.exited:
			err = fmt.Errorf("%w (sshd exited: %v)", err, waitErr)
		default:
			_ = s.Stop(context.Background())
		}
		return nil, s.startFailed(err)
	}
	if err := s.saveState(); err != nil {
		_ = s.Stop(context.Background())
		return nil, err
	}
	return s, nil
}

// Load returns the handle of an sshd that Start ran with dir, e.g. from
// another process. Its Stop polls /proc instead of reaping the process.
func Load(dir string) (*Server, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("no sshd state in %s: %w", dir, err)
	}
	var s Server
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("sshd state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &s, nil
}

// Addr returns ip:port for one listen address.
func (s *Server) Addr(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(s.Port)) }

// Running reports whether our sshd process is alive.
func (s *Server) Running() bool {
	if s.exited != nil {
		select {
		case <-s.exited:
			return false
		default:
			return true
		}
	}
	return s.isOurs()
}

// Stop sends SIGTERM to our sshd (only to its pid, and only if that pid
// still runs our config) and waits, bounded by ctx and 10 s, for it to exit;
// after half that time it sends SIGKILL. Sessions already open keep their own
// processes until their clients disconnect. Stopping a stopped server is not
// an error.
func (s *Server) Stop(ctx context.Context) error {
	if !s.Running() {
		return nil
	}
	if err := syscall.Kill(s.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop sshd pid %d: %w", s.Pid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	killAt := time.Now().Add(stopTimeout / 2)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for s.Running() {
		if time.Now().After(killAt) {
			_ = syscall.Kill(s.Pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sshd pid %d still running after SIGTERM and SIGKILL: %w; log %s", s.Pid, ctx.Err(), s.LogFile)
		case <-s.exited: // nil after Load: never ready, the tick polls
		case <-tick.C:
		}
	}
	return nil
}

// isOurs reports whether s.Pid is a live (not zombie) process running our
// config, so that a reused pid is never signalled.
func (s *Server) isOurs() bool {
	if s.Pid <= 0 {
		return false
	}
	proc := "/proc/" + strconv.Itoa(s.Pid)
	cmdline, err := os.ReadFile(proc + "/cmdline")
	if err != nil || !strings.Contains(string(cmdline), s.ConfigFile) {
		return false
	}
	stat, err := os.ReadFile(proc + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return false
}

// waitReady polls until every address answers with an OpenSSH banner.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	pending := append([]string(nil), s.Addrs...)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var lastErr error
	for {
		var still []string
		for _, a := range pending {
			if err := banner(ctx, s.Addr(a)); err != nil {
				still = append(still, a)
				lastErr = err
			}
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sshd pid %d not answering on %s (%v): %w", s.Pid, strings.Join(pending, ", "), lastErr, ctx.Err())
		case <-s.exited:
			return fmt.Errorf("sshd pid %d exited before answering on %s", s.Pid, strings.Join(pending, ", "))
		case <-tick.C:
		}
	}
}

// banner connects to addr and checks for an OpenSSH identification line.
func banner(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read banner from %s: %w", addr, err)
	}
	if !strings.HasPrefix(line, "SSH-2.0-OpenSSH") {
		return fmt.Errorf("%s answered %q, not OpenSSH", addr, strings.TrimSpace(line))
	}
	return nil
}

// startFailed adds the log file's name and end to a start failure.
func (s *Server) startFailed(err error) error {
	return fmt.Errorf("sshd did not start: %w; log %s ends with:\n%s", err, s.LogFile, s.logTail())
}

// logTail returns the end of the log file, or why it cannot be read.
func (s *Server) logTail() string {
	data, err := os.ReadFile(s.LogFile)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return tail(string(data), 20)
}

// checkAddrs accepts loopback IPs only, and a valid port.
func checkAddrs(addrs []string, port int) error {
	if len(addrs) == 0 {
		return errors.New("sshd: no listen address given")
	}
	if port <= 0 || port > 65535 {
		return fmt.Errorf("sshd: port %d out of range", port)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("sshd: listen address %q is not a loopback IP (127.0.0.x or ::1); the lab binds to loopback only", a)
		}
		if seen[ip.String()] {
			return fmt.Errorf("sshd: listen address %s given twice", a)
		}
		seen[ip.String()] = true
	}
	return nil
}

// checkPathForConfig refuses directory names that sshd_config would
// misread (it splits on spaces and expands % tokens in some paths).
func checkPathForConfig(dir string) error {
	for _, r := range dir {
		ok := r == '/' || r == '_' || r == '-' || r == '.' || r == '+' || r == '@' || r == ',' || r == '=' ||
			('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
		if !ok {
			return fmt.Errorf("sshd: directory %q has a character (%q) that sshd_config cannot hold safely", dir, r)
		}
	}
	return nil
}

// writeKeys creates the host keys, the client key and authorized_keys, and
// returns the public host keys.
func (s *Server) writeKeys() ([]ssh.PublicKey, error) {
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var pubs []ssh.PublicKey
	s.HostKeyFiles = nil
	for _, k := range []struct {
		name string
		priv any
	}{{"ssh_host_ed25519_key", edPriv}, {"ssh_host_ecdsa_key", ecPriv}} {
		pub, err := writeKeyPair(filepath.Join(s.Dir, k.name), k.priv, "flow lab sshd host key")
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, pub)
		s.HostKeyFiles = append(s.HostKeyFiles, filepath.Join(s.Dir, k.name+".pub"))
	}
	_, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	clientPub, err := writeKeyPair(s.ClientKeyFile, clientPriv, "flow lab client")
	if err != nil {
		return nil, err
	}
	return pubs, writeFile(filepath.Join(s.Dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub))
}

// writeKeyPair writes an OpenSSH private key (0600) and its .pub file.
func writeKeyPair(path string, priv any, comment string) (ssh.PublicKey, error) {
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", path, err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	if err := writeFile(path, pem.EncodeToMemory(block)); err != nil {
		return nil, err
	}
	return signer.PublicKey(), writeFile(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()))
}

// writeFile replaces path with data, mode 0600.
func writeFile(path string, data []byte) error {
	_ = os.Remove(path) // a previous run's file may have other permissions
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeConfig writes sshd_config: loopback listeners, our keys, public
// key logins only, local port forwarding allowed.
func (s *Server) writeConfig() error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by flow lab/sshd. Everything this sshd uses is in %s.\n", s.Dir)
	fmt.Fprintf(&b, "Port %d\n", s.Port)
	for _, a := range s.Addrs {
		fmt.Fprintf(&b, "ListenAddress %s\n", a)
	}
	for _, f := range s.HostKeyFiles {
		fmt.Fprintf(&b, "HostKey %s\n", strings.TrimSuffix(f, ".pub"))
	}
	fmt.Fprintf(&b, "PidFile %s\n", filepath.Join(s.Dir, "sshd.pid"))
	fmt.Fprintf(&b, "AuthorizedKeysFile %s\n", filepath.Join(s.Dir, "authorized_keys"))
	b.WriteString(`StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowTcpForwarding local
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
GatewayPorts no
PrintMotd no
LogLevel VERBOSE
MaxStartups 64:30:128
`)
	return writeFile(s.ConfigFile, []byte(b.String()))
}

// writeKnownHosts lists every host key for every listen address.
func (s *Server) writeKnownHosts(keys []ssh.PublicKey) error {
	var b strings.Builder
	for _, a := range s.Addrs {
		for _, k := range keys {
			b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(s.Addr(a))}, k) + "\n")
		}
	}
	return writeFile(s.KnownHostsFile, []byte(b.String()))
}

// saveState records the handle for Load.
func (s *Server) saveState() error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(s.Dir, stateFile), append(data, '\n'))
}

// HostKeys reads the public host keys (ed25519 first, then ECDSA).
func (s *Server) HostKeys() ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for _, f := range s.HostKeyFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			return nil, fmt.Errorf("host key %s: %w", f, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
