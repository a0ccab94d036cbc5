// Package sshtest runs an in-process SSH server for unit tests.
//
// The server listens on 127.0.0.1 on a free port, presents an ed25519 and an
// ECDSA host key (so clients that verify only the ed25519 key must negotiate
// it), accepts one user by public key or password, runs exec requests with
// /bin/sh -c in their own process group (stdin, stdout, stderr, exit status,
// exit signal; a "signal" request or the channel's close kills the group,
// unless SetIgnoreSignals imitates OpenSSH's root sessions),
// answers keepalives, and opens direct-tcpip channels to loopback addresses
// only.
package sshtest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// User is the login name the server accepts.
const User = "flow"

// shutdownWait bounds how long Close waits for connections to wind down.
const shutdownWait = 10 * time.Second

// Server is a running in-process SSH server.
type Server struct {
	// Host and Port are where it listens (Host is always 127.0.0.1).
	Host string
	Port int

	t         testing.TB
	cfg       *ssh.ServerConfig
	hostKey   ssh.Signer // ed25519, the one written to known_hosts
	ecKey     ssh.Signer // ECDSA P-256, offered too
	clientKey ed25519.PrivateKey
	clientPub ssh.PublicKey

	mu         sync.Mutex
	password   string
	ln         net.Listener
	refuse     bool
	closed     bool
	closing    chan struct{} // closed by Close
	ignoreSigs bool
	maxSess    int // 0: unlimited
	openSess   int
	conns      map[net.Conn]struct{}
	accepted   int
	keepalives int
	wg         sync.WaitGroup
}

// Start starts a server on 127.0.0.1:0 and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{Host: "127.0.0.1", t: t, conns: map[net.Conn]struct{}{}, closing: make(chan struct{})}

	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshtest: host key: %v", err)
	}
	if s.hostKey, err = ssh.NewSignerFromKey(hostPriv); err != nil {
		t.Fatalf("sshtest: host key: %v", err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("sshtest: ecdsa host key: %v", err)
	}
	s.ecKey, err = ssh.NewSignerFromKey(ecKey)
	if err != nil {
		t.Fatalf("sshtest: ecdsa host key: %v", err)
	}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshtest: client key: %v", err)
	}
	s.clientKey = clientPriv
	if s.clientPub, err = ssh.NewPublicKey(clientPub); err != nil {
		t.Fatalf("sshtest: client key: %v", err)
	}
	pw := make([]byte, 12)
	if _, err := rand.Read(pw); err != nil {
		t.Fatalf("sshtest: password: %v", err)
	}
	s.password = hex.EncodeToString(pw)

	s.cfg = &ssh.ServerConfig{
		PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			s.mu.Lock()
			want := s.password
			s.mu.Unlock()
			if c.User() == User && string(pw) == want {
				s.authenticated()
				return nil, nil
			}
			return nil, errors.New("wrong user or password")
		},
		PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() == User && string(k.Marshal()) == string(s.clientPub.Marshal()) {
				s.authenticated()
				return nil, nil
			}
			return nil, errors.New("unknown user or key")
		},
	}
	s.cfg.AddHostKey(s.ecKey)
	s.cfg.AddHostKey(s.hostKey)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sshtest: listen: %v", err)
	}
	s.ln = ln
	s.Port = ln.Addr().(*net.TCPAddr).Port
	s.wg.Add(1)
	go s.serve(ln)
	t.Cleanup(s.Close)
	return s
}

// Addr returns host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Password returns the password the server accepts for User.
func (s *Server) Password() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.password
}

// SetPassword changes the password the server accepts for User.
func (s *Server) SetPassword(pw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.password = pw
}

// HostKey returns the server's ed25519 host key (the one KnownHostsFile
// lists).
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// HostKeys returns both host keys: ed25519 first, then ECDSA.
func (s *Server) HostKeys() []ssh.PublicKey {
	return []ssh.PublicKey{s.hostKey.PublicKey(), s.ecKey.PublicKey()}
}

// KnownHostsFile writes a known_hosts file with the server's ed25519 key
// into a temporary directory and returns its path.
func (s *Server) KnownHostsFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.HostKey()) + "\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatalf("sshtest: write known_hosts: %v", err)
	}
	return path
}

// ClientKeyFile writes the private key the server accepts for User (OpenSSH
// format, mode 0600) into a temporary directory and returns its path.
func (s *Server) ClientKeyFile(t testing.TB) string {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(s.clientKey, "sshtest client")
	if err != nil {
		t.Fatalf("sshtest: marshal client key: %v", err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("sshtest: write client key: %v", err)
	}
	return path
}

// SetRefuse(true) closes the listening socket, so new connections are
// refused as by a host whose sshd is down; SetRefuse(false) listens again on
// the same port. Established connections are not affected (see
// CloseConnections).
func (s *Server) SetRefuse(refuse bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if refuse == s.refuse || s.closed {
		return
	}
	s.refuse = refuse
	if refuse {
		_ = s.ln.Close()
		return
	}
	ln, err := net.Listen("tcp", s.Addr())
	if err != nil {
		s.t.Fatalf("sshtest: listen again on %s: %v", s.Addr(), err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.serve(ln)
}

// SetIgnoreSignals(true) makes the server behave like OpenSSH in sessions
// of root logins: "signal" requests are ignored, and a process whose channel
// the client closed keeps running until it ends (or the server closes).
func (s *Server) SetIgnoreSignals(ignore bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ignoreSigs = ignore
}

// SetMaxSessions makes the server refuse session channels beyond n open at
// once, per server, as OpenSSH's MaxSessions does per connection (0 means
// no limit). A session counts until its process has been reaped and its
// channel closed.
func (s *Server) SetMaxSessions(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxSess = n
}

// takeSession counts a new session, or refuses it at the limit.
func (s *Server) takeSession() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxSess > 0 && s.openSess >= s.maxSess {
		return false
	}
	s.openSess++
	return true
}

// releaseSession uncounts a session.
func (s *Server) releaseSession() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.openSess--
}

// ignoringSignals reports the SetIgnoreSignals setting.
func (s *Server) ignoringSignals() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ignoreSigs
}

// CloseConnections drops every established connection, as a network failure
// or a restarted host would.
func (s *Server) CloseConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.Close()
	}
}

// authenticated counts a successful login. It runs in the auth callback,
// before the client learns of its success, so a client that has dialled
// always finds itself counted.
func (s *Server) authenticated() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accepted++
}

// Connections returns how many connections have authenticated.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Keepalives returns how many keepalive@openssh.com requests arrived.
func (s *Server) Keepalives() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keepalives
}

// Close stops the server, drops all connections (killing their commands)
// and waits, bounded, for everything to end. Start registers it with
// t.Cleanup.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.closing)
	_ = s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTimer(shutdownWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.t.Errorf("sshtest: server %s: connections still running %s after Close", s.Addr(), shutdownWait)
	}
}

// serve accepts connections until ln is closed.
func (s *Server) serve(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handleConn(nc)
	}
}

// handleConn runs one SSH connection.
func (s *Server) handleConn(nc net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
		_ = nc.Close()
	}()
	_ = nc.SetDeadline(time.Now().Add(shutdownWait))
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	_ = nc.SetDeadline(time.Time{})
	defer sc.Close()
	var chwg sync.WaitGroup
	chwg.Add(1)
	go func() {
		defer chwg.Done()
		for r := range reqs {
			if r.Type == "keepalive@openssh.com" {
				s.mu.Lock()
				s.keepalives++
				s.mu.Unlock()
			}
			if r.WantReply {
				_ = r.Reply(false, nil) // as OpenSSH does for unknown requests
			}
		}
	}()
	for nch := range chans {
		switch nch.ChannelType() {
		case "session":
			if !s.takeSession() {
				_ = nch.Reject(ssh.ConnectionFailed, "open failed") // as OpenSSH beyond MaxSessions
				continue
			}
			chwg.Add(1)
			go func() { defer chwg.Done(); defer s.releaseSession(); s.session(nch) }()
		case "direct-tcpip":
			chwg.Add(1)
			go func() { defer chwg.Done(); s.directTCPIP(nch) }()
		default:
			_ = nch.Reject(ssh.UnknownChannelType, "unsupported channel type")
		}
	}
	chwg.Wait()
}

// signals maps SSH signal names to Unix signals.
var signals = map[ssh.Signal]syscall.Signal{
	ssh.SIGABRT: syscall.SIGABRT, ssh.SIGALRM: syscall.SIGALRM, ssh.SIGFPE: syscall.SIGFPE,
	ssh.SIGHUP: syscall.SIGHUP, ssh.SIGILL: syscall.SIGILL, ssh.SIGINT: syscall.SIGINT,
	ssh.SIGKILL: syscall.SIGKILL, ssh.SIGPIPE: syscall.SIGPIPE, ssh.SIGQUIT: syscall.SIGQUIT,
	ssh.SIGSEGV: syscall.SIGSEGV, ssh.SIGTERM: syscall.SIGTERM, ssh.SIGUSR1: syscall.SIGUSR1,
	ssh.SIGUSR2: syscall.SIGUSR2,
}

// signalName returns the SSH name of a Unix signal.
func signalName(sig syscall.Signal) string {
	for name, s := range signals {
		if s == sig {
			return string(name)
		}
	}
	return "SIG" + strconv.Itoa(int(sig))
}

// proc is the process of one session.
type proc struct {
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   bool
	exitedCh chan struct{} // closed when the process has been reaped
}

// killGroup signals the process group while its leader has not been reaped
// (afterwards the group id could belong to someone else).
func (p *proc) killGroup(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.exited {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// session serves one "session" channel: a single exec request, signals,
// and a kill of the process group when the client closes the channel.
func (s *Server) session(nch ssh.NewChannel) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	p := &proc{exitedCh: make(chan struct{})}
	var waited sync.WaitGroup
	for req := range reqs {
		switch req.Type {
		case "exec":
			var payload struct{ Command string }
			p.mu.Lock()
			started := p.cmd != nil
			p.mu.Unlock()
			if started || ssh.Unmarshal(req.Payload, &payload) != nil {
				_ = req.Reply(false, nil)
				continue
			}
			// Like sshd: accept the request, then report a failure to
			// start as the command's own failure. Replying first also
			// keeps the reply ahead of the channel close.
			_ = req.Reply(true, nil)
			if err := s.exec(ch, p, payload.Command, &waited); err != nil {
				fmt.Fprintf(ch.Stderr(), "sshtest: %v\n", err)
				_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(&struct{ Status uint32 }{127}))
				_ = ch.Close()
			}
		case "signal":
			var payload struct{ Signal string }
			if ssh.Unmarshal(req.Payload, &payload) == nil {
				if sig, ok := signals[ssh.Signal(payload.Signal)]; ok && !s.ignoringSignals() {
					p.killGroup(sig)
				}
			}
			if req.WantReply {
				_ = req.Reply(true, nil)
			}
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
	// The channel is closed: nobody can read the output any more. (When
	// imitating OpenSSH's root sessions, the process lives on until it
	// ends or the server closes.)
	if s.ignoringSignals() {
		p.mu.Lock()
		cmd := p.cmd
		p.mu.Unlock()
		if cmd != nil {
			select {
			case <-p.exitedCh:
			case <-s.closing:
			}
		}
	}
	p.killGroup(syscall.SIGKILL)
	waited.Wait()
	_ = ch.Close()
}

// exec starts command and, in the background, reports its end on ch.
func (s *Server) exec(ch ssh.Channel, p *proc, command string, waited *sync.WaitGroup) error {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	cmd.WaitDelay = shutdownWait // bound the wait for output from stray children
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	p.mu.Lock()
	err = cmd.Start()
	if err == nil {
		p.cmd = cmd
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(stdin, ch) // ends at the client's EOF
		_ = stdin.Close()
	}()
	waited.Add(1)
	go func() {
		defer waited.Done()
		_ = cmd.Wait()
		p.mu.Lock()
		p.exited = true
		p.mu.Unlock()
		close(p.exitedCh)
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		_ = ch.CloseWrite()
		if ws.Signaled() {
			msg := struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{Signal: signalName(ws.Signal())}
			_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(&msg))
		} else {
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(&struct{ Status uint32 }{uint32(ws.ExitStatus())}))
		}
		_ = ch.Close()
	}()
	return nil
}

// directTCPIP serves a port forward to a loopback address.
func (s *Server) directTCPIP(nch ssh.NewChannel) {
	var req struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &req); err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	ip := net.ParseIP(req.Host)
	if ip == nil || !ip.IsLoopback() {
		_ = nch.Reject(ssh.Prohibited, "sshtest forwards to loopback addresses only")
		return
	}
	target, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(int(req.Port))), shutdownWait)
	if err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		_ = target.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	// Either direction ending closes both sides: a tunnelled client never
	// half-closes, and a full close cannot leave a copy blocked.
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = ch.Close()
			_ = target.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(ch, target)
		closeBoth()
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(target, ch)
		closeBoth()
	}()
	wg.Wait()
}
