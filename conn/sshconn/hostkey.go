package sshconn

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError reports a host key that known_hosts does not accept: the host
// is unknown, its key changed, or its key is revoked. Its message says what to
// do about it.
type HostKeyError struct {
	// Addr is host:port as dialled and looked up.
	Addr string
	// File is the known_hosts file consulted.
	File string
	// KeyType and Fingerprint (SHA256:...) describe the key the server
	// presented.
	KeyType, Fingerprint string
	// Known lists the entries found for the host ("file:line type
	// fingerprint"); empty when the host is unknown.
	Known []string
	// Revoked is set when the presented key is marked @revoked.
	Revoked bool
}

// Unknown reports whether the host has no entry at all in the file.
func (e *HostKeyError) Unknown() bool { return !e.Revoked && len(e.Known) == 0 }

// Error explains the problem and the fix.
func (e *HostKeyError) Error() string {
	scan := e.scanHint()
	switch {
	case e.Revoked:
		return fmt.Sprintf("host key of %s is REVOKED in %s (%s key %s): refusing to connect",
			e.Addr, e.File, e.KeyType, e.Fingerprint)
	case len(e.Known) == 0:
		return fmt.Sprintf("host %s is unknown: no entry in known_hosts file %s; it presented %s key %s. "+
			"Check this fingerprint with the host's administrator (on the host: ssh-keygen -lf %s), "+
			"then add the host with: %s",
			e.Addr, e.File, e.KeyType, e.Fingerprint, hostKeyPath(e.KeyType), scan)
	default:
		remove := "ssh-keygen -R " + ShellQuote(knownhosts.Normalize(e.Addr)) + " -f " + ShellQuote(e.File)
		return fmt.Sprintf("HOST KEY CHANGED for %s: it presented %s key %s but known_hosts file %s has [%s]. "+
			"This may be a man-in-the-middle attack, or the host was reinstalled. "+
			"Only if the change is expected and the new fingerprint is checked with the host's administrator: %s; then %s",
			e.Addr, e.KeyType, e.Fingerprint, e.File, strings.Join(e.Known, "; "), remove, scan)
	}
}

// hostKeyCheck wraps a knownhosts callback so that refusals become
// *HostKeyError values. The last refusal is kept in *last, because the SSH
// library wraps the callback's error in a generic handshake error.
func hostKeyCheck(cb ssh.HostKeyCallback, file string, last *error) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, remote, key)
		if err == nil {
			return nil
		}
		hke := &HostKeyError{Addr: hostname, File: file, KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key)}
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case errors.As(err, &re):
			hke.Revoked = true
		case errors.As(err, &ke):
			for _, k := range ke.Want {
				hke.Known = append(hke.Known, k.Filename+":"+strconv.Itoa(k.Line)+" "+k.Key.Type()+" "+ssh.FingerprintSHA256(k.Key))
			}
		default:
			*last = err
			return err
		}
		*last = hke
		return hke
	}
}

// knownAlgorithms returns the host key algorithms for the key types that
// known_hosts holds for addr, so that the server is asked for a key we can
// verify (golang/go#49631: x/crypto prefers ECDSA over ed25519, so a host known
// by its ed25519 key but also holding an ECDSA key would fail as "changed").
// It returns nil when the host is unknown, leaving the defaults in place so
// the callback reports the unknown key.
func knownAlgorithms(cb ssh.HostKeyCallback, addr string, remote net.Addr) []string {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := cb(addr, remote, probe); !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, s := range a {
			if !seen[s] {
				seen[s] = true
				algos = append(algos, s)
			}
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

// loadKnownHosts opens the known_hosts file with a message that says how to
// create it when it is missing.
func loadKnownHosts(cfg Config) (ssh.HostKeyCallback, error) {
	if _, err := os.Stat(cfg.KnownHostsFile); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("known_hosts file %s does not exist; create it with the host's key after checking its fingerprint: %s",
				cfg.KnownHostsFile, (&HostKeyError{Addr: cfg.Addr(), File: cfg.KnownHostsFile}).scanHint())
		}
		return nil, fmt.Errorf("known_hosts file: %w", err)
	}
	cb, err := knownhosts.New(cfg.KnownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("known_hosts file %s: %w", cfg.KnownHostsFile, err)
	}
	return cb, nil
}

// hostKeyPath guesses where a host keeps its public key of the given type.
func hostKeyPath(keyType string) string {
	switch {
	case strings.Contains(keyType, "ed25519"):
		return "/etc/ssh/ssh_host_ed25519_key.pub"
	case strings.Contains(keyType, "ecdsa"):
		return "/etc/ssh/ssh_host_ecdsa_key.pub"
	case strings.Contains(keyType, "rsa"):
		return "/etc/ssh/ssh_host_rsa_key.pub"
	}
	return "/etc/ssh/ssh_host_*_key.pub"
}

// scanHint returns the ssh-keyscan command that adds the host to the file.
func (e *HostKeyError) scanHint() string {
	host, port, _ := net.SplitHostPort(e.Addr)
	scan := "ssh-keyscan"
	if port != "" && port != "22" {
		scan += " -p " + port
	}
	return scan + " " + ShellQuote(host) + " >> " + ShellQuote(e.File)
}
