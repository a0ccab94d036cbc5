// Package sshd runs a real OpenSSH server for integration tests and the lab.
//
// A Server listens on one port at several loopback addresses (127.0.0.x), so
// every lab node "host" is reached over SSH at its own address. OpenSSH binds
// at most 16 sockets per process (MAX_LISTEN_SOCKS), so a Server is one sshd
// process per group of up to MaxAddrsPerProcess addresses, all sharing the
// same host keys, client key and known_hosts: to a client it is one server.
// Everything it needs lives in one directory: the configs, two host keys
// (ed25519 and ECDSA), a client key and the authorized_keys accepting it, a
// known_hosts listing the host keys for every listen address, the logs and a
// state file from which Load rebuilds the handle in another process. Logins
// are by public key, as the user running Start (an unprivileged sshd can only
// log in as itself), and, when Options.Password is set, also by password (as
// root only; see StartWith).
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
	"sync"
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

// MaxAddrsPerProcess is how many addresses one sshd process listens on:
// OpenSSH refuses more than 16 listen sockets ("Too many listen sockets.
// Enlarge MAX_LISTEN_SOCKS"), so Start runs one process per group of this
// many addresses.
const MaxAddrsPerProcess = 16

// Server is a running sshd: one or more processes (Procs) serving one port
// at every address of Addrs with the same keys. Its fields are the paths and
// facts a client needs; all paths are absolute and inside Dir. Pid,
// ConfigFile and LogFile are those of the first process.
type Server struct {
	Dir            string   `json:"dir"`
	Addrs          []string `json:"addrs"` // listen addresses (IPs)
	Port           int      `json:"port"`
	User           string   `json:"user"` // the login name the client key (and password) is accepted for
	Pid            int      `json:"pid"`
	ConfigFile     string   `json:"config_file"`
	LogFile        string   `json:"log_file"`
	KnownHostsFile string   `json:"known_hosts_file"`
	ClientKeyFile  string   `json:"client_key_file"`
	// HostKeyFiles are the public host keys (ed25519 first, then ECDSA).
	HostKeyFiles []string `json:"host_key_files"`
	// PasswordLogin is true when the server also accepts User's password
	// (Options.Password). The password itself is never recorded here.
	PasswordLogin bool `json:"password_login"`
	// Procs are the sshd processes, one per group of at most
	// MaxAddrsPerProcess addresses, in the order of Addrs.
	Procs []*Proc `json:"procs"`
}

// Proc is one sshd process of a Server.
type Proc struct {
	Addrs      []string `json:"addrs"`
	Pid        int      `json:"pid"`
	ConfigFile string   `json:"config_file"`
	LogFile    string   `json:"log_file"`

	exited  chan struct{} // closed when our child has been reaped; nil after Load
	waitErr error         // why it exited, once exited is closed
}

// Options are Server settings beyond addresses and port.
type Options struct {
	// Password, when not empty, makes the server accept it for User as
	// well as the client key, like the password logins many sites use.
	// sshd checks passwords against the system's shadow database, so
	// StartWith (as root only) runs each sshd in its own mount namespace
	// where a lab-owned shadow file holding only User's entry with this
	// password's SHA-512 crypt hash is bind-mounted over /etc/shadow: the
	// machine's own accounts and passwords are never touched. It is a
	// secret: never written except as that hash.
	Password string
}

// stateFile is where Start records the handle for Load.
const stateFile = "sshd.json"

// Start writes the configs for an sshd listening on port at every address in
// listenAddrs (loopback IPs only), with fresh host and client keys, into dir
// (created if needed; existing keys are replaced), starts its processes
// (one per MaxAddrsPerProcess addresses), each in its own session, and waits,
// bounded by ctx and 15 s, until every address answers with an OpenSSH
// banner. As root it creates /run/sshd, which sshd needs. Errors name the log
// file and quote its end. Logins are by the client key only.
func Start(ctx context.Context, dir string, listenAddrs []string, port int) (*Server, error) {
	return StartWith(ctx, dir, listenAddrs, port, Options{})
}

// StartWith is Start with Options: with o.Password the server accepts that
// password for User too (root only, see Options.Password; it says so
// otherwise). Public-key logins keep working either way, and host keys are
// the same.
func StartWith(ctx context.Context, dir string, listenAddrs []string, port int, o Options) (*Server, error) {
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
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o700); err != nil {
		return nil, err
	}
	if o.Password != "" && os.Geteuid() != 0 {
		return nil, errors.New("sshd: password login needs root (sshd checks passwords against the shadow database, which the lab replaces in a private mount namespace)")
	}
	s := &Server{
		Dir:            dir,
		Addrs:          append([]string(nil), listenAddrs...),
		Port:           port,
		User:           u.Username,
		KnownHostsFile: filepath.Join(dir, "known_hosts"),
		ClientKeyFile:  filepath.Join(dir, "client_ed25519"),
		PasswordLogin:  o.Password != "",
	}
	for i := 0; i < len(s.Addrs); i += MaxAddrsPerProcess {
		n := len(s.Procs)
		cfg, log := "sshd_config", "sshd.log"
		if n > 0 {
			cfg, log = "sshd_config."+strconv.Itoa(n), "sshd."+strconv.Itoa(n)+".log"
		}
		s.Procs = append(s.Procs, &Proc{
			Addrs:      s.Addrs[i:min(i+MaxAddrsPerProcess, len(s.Addrs))],
			ConfigFile: filepath.Join(dir, cfg),
			LogFile:    filepath.Join(dir, log),
		})
	}
	s.ConfigFile, s.LogFile = s.Procs[0].ConfigFile, s.Procs[0].LogFile
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
	if err := s.writeKnownHosts(hostKeys); err != nil {
		return nil, err
	}
	shadow := ""
	if o.Password != "" {
		shadow = filepath.Join(dir, "shadow")
		if err := writeShadow(shadow, s.User, o.Password); err != nil {
			return nil, err
		}
	}
	if os.Geteuid() == 0 {
		// Privilege separation directory, normally made by systemd.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("create /run/sshd: %w", err)
		}
	}
	for _, p := range s.Procs {
		if err := s.writeConfig(p); err != nil {
			return nil, err
		}
		if out, err := exec.CommandContext(ctx, Binary, "-t", "-f", p.ConfigFile).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("sshd rejects its config %s: %v: %s", p.ConfigFile, err, strings.TrimSpace(string(out)))
		}
		_ = os.Remove(p.LogFile)
	}
	for _, p := range s.Procs {
		if err := p.start(shadow); err != nil {
			_ = s.Stop(context.Background())
			return nil, err
		}
	}
	s.Pid = s.Procs[0].Pid
	errs := make([]error, len(s.Procs))
	var wg sync.WaitGroup
	for i, p := range s.Procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.waitReady(ctx, p)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		p := s.Procs[i]
		select {
		case <-p.exited:
			err = fmt.Errorf("%w (sshd exited: %v)", err, p.waitErr)
		default:
		}
		_ = s.Stop(context.Background())
		return nil, p.startFailed(err)
	}
	if err := s.saveState(); err != nil {
		_ = s.Stop(context.Background())
		return nil, err
	}
	return s, nil
}

// start runs one sshd process. -D: stay in the foreground as our child, so
// we know its pid and reap it; Setsid: detach from our terminal and process
// group, so it outlives us when the lab wants it to. -E: log to the file.
// With a shadow file, the process first enters a private mount namespace
// (unshare(1), whose default propagation is private, so nothing leaks to the
// machine's mounts) and bind-mounts the file over /etc/shadow; the shell
// then execs sshd, keeping the pid, so the pid's command line is sshd's.
func (p *Proc) start(shadow string) error {
	args := []string{"-D", "-f", p.ConfigFile, "-E", p.LogFile}
	cmd := exec.Command(Binary, args...)
	if shadow != "" {
		script := `mount --bind "$1" /etc/shadow && shift && exec "$@"`
		cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", shadow, Binary}, args...)...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", Binary, err)
	}
	p.Pid = cmd.Process.Pid
	p.exited = make(chan struct{})
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return nil
}

// Load returns the handle of an sshd that Start ran with dir, e.g. from
// another process. Its Stop polls /proc instead of reaping the processes.
func Load(dir string) (*Server, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("no sshd state in %s: %w", dir, err)
	}
	var s Server
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("sshd state %s: %w", filepath.Join(dir, stateFile), err)
	}
	if len(s.Procs) == 0 && s.Pid > 0 { // a state file from before Procs
		s.Procs = []*Proc{{Addrs: s.Addrs, Pid: s.Pid, ConfigFile: s.ConfigFile, LogFile: s.LogFile}}
	}
	return &s, nil
}

// Addr returns ip:port for one listen address.
func (s *Server) Addr(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(s.Port)) }

// Pids returns the pids of the server's processes, in the order of Procs.
func (s *Server) Pids() []int {
	out := make([]int, len(s.Procs))
	for i, p := range s.Procs {
		out[i] = p.Pid
	}
	return out
}

// Running reports whether every sshd process of the server is alive.
func (s *Server) Running() bool {
	if len(s.Procs) == 0 {
		return false
	}
	for _, p := range s.Procs {
		if !p.Running() {
			return false
		}
	}
	return true
}

// Running reports whether this sshd process is alive.
func (p *Proc) Running() bool {
	if p.exited != nil {
		select {
		case <-p.exited:
			return false
		default:
			return true
		}
	}
	return p.isOurs()
}

// Stop stops every sshd process of the server (in parallel) as Proc.Stop
// does. Sessions already open keep their own processes until their clients
// disconnect. Stopping a stopped server is not an error.
func (s *Server) Stop(ctx context.Context) error {
	errs := make([]error, len(s.Procs))
	var wg sync.WaitGroup
	for i, p := range s.Procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Stop(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Stop sends SIGTERM to this sshd (only to its pid, and only if that pid
// still runs our config) and waits, bounded by ctx and 10 s, for it to exit;
// after half that time it sends SIGKILL.
func (p *Proc) Stop(ctx context.Context) error {
	if !p.Running() {
		return nil
	}
	if err := syscall.Kill(p.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop sshd pid %d: %w", p.Pid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	killAt := time.Now().Add(stopTimeout / 2)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for p.Running() {
		if time.Now().After(killAt) {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sshd pid %d still running after SIGTERM and SIGKILL: %w; log %s", p.Pid, ctx.Err(), p.LogFile)
		case <-p.exited: // nil after Load: never ready, the tick polls
		case <-tick.C:
		}
	}
	return nil
}

// isOurs reports whether p.Pid is a live (not zombie) process running our
// config, so that a reused pid is never signalled. The config's name must be
// a whole word of the command line (sshd_config is a prefix of
// sshd_config.1); sshd rewrites its command line as a space-separated title
// ("sshd: /usr/sbin/sshd -D -f … [listener] …").
func (p *Proc) isOurs() bool {
	if p.Pid <= 0 {
		return false
	}
	proc := "/proc/" + strconv.Itoa(p.Pid)
	cmdline, err := os.ReadFile(proc + "/cmdline")
	if err != nil || !namesWord(string(cmdline), p.ConfigFile) {
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

// namesWord reports whether cmdline holds word followed by a space, a NUL
// or its end.
func namesWord(cmdline, word string) bool {
	for i := 0; ; {
		j := strings.Index(cmdline[i:], word)
		if j < 0 {
			return false
		}
		end := i + j + len(word)
		if end == len(cmdline) || cmdline[end] == ' ' || cmdline[end] == 0 {
			return true
		}
		i = i + j + 1
	}
}

// waitReady polls until every address of p answers with an OpenSSH banner.
func (s *Server) waitReady(ctx context.Context, p *Proc) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	pending := append([]string(nil), p.Addrs...)
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
			return fmt.Errorf("sshd pid %d not answering on %s (%v): %w", p.Pid, strings.Join(pending, ", "), lastErr, ctx.Err())
		case <-p.exited:
			return fmt.Errorf("sshd pid %d exited before answering on %s", p.Pid, strings.Join(pending, ", "))
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
func (p *Proc) startFailed(err error) error {
	return fmt.Errorf("sshd did not start: %w; log %s ends with:\n%s", err, p.LogFile, p.logTail())
}

// logTail returns the end of the log file, or why it cannot be read.
func (p *Proc) logTail() string {
	data, err := os.ReadFile(p.LogFile)
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

// writeConfig writes one process's sshd_config: its loopback listeners,
// the shared keys, public key logins (and password logins when the server
// takes them), local port forwarding allowed.
func (s *Server) writeConfig(p *Proc) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by flow lab/sshd. Everything this sshd uses is in %s.\n", s.Dir)
	fmt.Fprintf(&b, "Port %d\n", s.Port)
	for _, a := range p.Addrs {
		fmt.Fprintf(&b, "ListenAddress %s\n", a)
	}
	for _, f := range s.HostKeyFiles {
		fmt.Fprintf(&b, "HostKey %s\n", strings.TrimSuffix(f, ".pub"))
	}
	fmt.Fprintf(&b, "PidFile %s\n", filepath.Join(s.Dir, strings.TrimSuffix(filepath.Base(p.LogFile), ".log")+".pid"))
	fmt.Fprintf(&b, "AuthorizedKeysFile %s\n", filepath.Join(s.Dir, "authorized_keys"))
	// The sessions' HOME is an empty folder of the lab: bash sources
	// ~/.bashrc for a command sshd runs, and this machine's root .bashrc
	// (pyenv init) took 150 ms per command, more than the command itself;
	// mysqld_safe started over SSH no longer reads the machine's ~/.my.cnf
	// either. A node host's own shell start-up is not what the lab measures.
	fmt.Fprintf(&b, "SetEnv HOME=%s\n", filepath.Join(s.Dir, "home"))
	password, rootLogin := "no", "prohibit-password"
	if s.PasswordLogin {
		password, rootLogin = "yes", "yes"
	}
	fmt.Fprintf(&b, "PasswordAuthentication %s\nPermitRootLogin %s\n", password, rootLogin)
	b.WriteString(`StrictModes no
PubkeyAuthentication yes
PermitEmptyPasswords no
KbdInteractiveAuthentication no
UsePAM no
AllowTcpForwarding local
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
GatewayPorts no
PrintMotd no
LogLevel VERBOSE
MaxStartups 64:30:128
`)
	return writeFile(p.ConfigFile, []byte(b.String()))
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
