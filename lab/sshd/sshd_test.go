package sshd_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/flowdba/flow/conn/sshconn"
	"github.com/flowdba/flow/lab/sshd"
	"github.com/flowdba/flow/lab/sshd/sshdtest"
)

// Addresses unlikely to be used by the MySQL lab (127.0.0.2, .3, ...).
var labAddrs = []string{"127.0.0.211", "127.0.0.212", "127.0.0.213"}

func TestStartServesEveryAddressAndStops(t *testing.T) {
	srv := sshdtest.Start(t, labAddrs...)
	if srv.Pid <= 0 || !srv.Running() {
		t.Fatalf("pid %d, running %v", srv.Pid, srv.Running())
	}

	// known_hosts has both host keys for every address, and nothing else.
	keys, err := srv.HostKeys()
	if err != nil || len(keys) != 2 {
		t.Fatalf("host keys: %d, %v", len(keys), err)
	}
	data, err := os.ReadFile(srv.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != len(labAddrs)*2 {
		t.Errorf("known_hosts has %d lines, want %d:\n%s", len(lines), len(labAddrs)*2, data)
	}
	cb, err := knownhosts.New(srv.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range labAddrs {
		for _, k := range keys {
			tcp := &net.TCPAddr{IP: net.ParseIP(a), Port: srv.Port}
			if err := cb(srv.Addr(a), tcp, k); err != nil {
				t.Errorf("known_hosts does not accept %s key for %s: %v", k.Type(), a, err)
			}
		}
	}

	// A real login on every address, with the generated client key.
	for _, a := range labAddrs {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c, err := sshconn.Dial(ctx, sshconn.Config{
			Host: a, Port: srv.Port, User: srv.User, KeyFile: srv.ClientKeyFile, KnownHostsFile: srv.KnownHostsFile,
		})
		if err != nil {
			cancel()
			t.Fatalf("login on %s: %v", a, err)
		}
		res, err := c.Run(ctx, sshconn.Command{Cmd: "echo $SSH_CONNECTION; echo $HOME"})
		cancel()
		_ = c.Close()
		// SSH_CONNECTION is "client-ip client-port server-ip server-port".
		if err != nil || !strings.Contains(res.Stdout, " "+a+" "+strconv.Itoa(srv.Port)) {
			t.Errorf("on %s: %q, %v", a, res.Stdout, err)
		}
		// the sessions' HOME is the lab's own empty folder: the machine
		// user's shell start-up files are not sourced
		if home := filepath.Join(srv.Dir, "home"); !strings.HasSuffix(strings.TrimSpace(res.Stdout), "\n"+home) {
			t.Errorf("on %s: HOME is not %s: %q", a, home, res.Stdout)
		}
	}

	// Load rebuilds the handle; Stop through it ends the process.
	loaded, err := sshd.Load(srv.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Pid != srv.Pid || !loaded.Running() {
		t.Fatalf("loaded pid %d running %v, want %d running", loaded.Pid, loaded.Running(), srv.Pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := loaded.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if loaded.Running() {
		t.Error("still running after Stop")
	}
	if err := srv.Stop(ctx); err != nil { // already stopped: no error
		t.Error(err)
	}
	for _, a := range labAddrs {
		if c, err := net.Dial("tcp", srv.Addr(a)); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Stop", srv.Addr(a))
		}
	}
}

func TestStartRefusesBadAddresses(t *testing.T) {
	sshdtest.Start(t) // makes sure OpenSSH is installed, so Start gets to check addresses
	ctx := context.Background()
	for _, addrs := range [][]string{nil, {"0.0.0.0"}, {"10.1.2.3"}, {"localhost"}, {"127.0.0.5", "127.0.0.5"}} {
		if _, err := sshd.Start(ctx, t.TempDir(), addrs, 2222); err == nil {
			t.Errorf("Start accepted %q", addrs)
		}
	}
	if _, err := sshd.Start(ctx, t.TempDir(), []string{"127.0.0.1"}, 0); err == nil {
		t.Error("Start accepted port 0")
	}
	if _, err := sshd.Start(ctx, t.TempDir()+"/with space", []string{"127.0.0.1"}, 2222); err == nil {
		t.Error("Start accepted a directory with a space")
	}
}

func TestStartReportsBusyPort(t *testing.T) {
	srv := sshdtest.Start(t, "127.0.0.214")
	_, err := sshd.Start(context.Background(), t.TempDir(), []string{"127.0.0.214"}, srv.Port)
	if err == nil || !strings.Contains(err.Error(), srv.Addr("127.0.0.214")) {
		t.Errorf("want an error naming the busy address, got %v", err)
	}
}

// TestStartManyAddresses starts an sshd on more addresses than one OpenSSH
// process can bind (16): Start runs one process per 16 addresses, all with
// the same host keys, and every address takes a real login; Stop ends them
// all.
func TestStartManyAddresses(t *testing.T) {
	var addrs []string
	for i := range sshd.MaxAddrsPerProcess + 5 {
		addrs = append(addrs, "127.0.3."+strconv.Itoa(200+i))
	}
	srv := sshdtest.Start(t, addrs...)
	if len(srv.Procs) != 2 || !srv.Running() {
		t.Fatalf("%d processes, running %v; want 2 running", len(srv.Procs), srv.Running())
	}
	if srv.Pids()[0] == srv.Pids()[1] {
		t.Fatalf("pids %v", srv.Pids())
	}
	for _, a := range []string{addrs[0], addrs[sshd.MaxAddrsPerProcess-1], addrs[sshd.MaxAddrsPerProcess], addrs[len(addrs)-1]} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c, err := sshconn.Dial(ctx, sshconn.Config{
			Host: a, Port: srv.Port, User: srv.User, KeyFile: srv.ClientKeyFile, KnownHostsFile: srv.KnownHostsFile,
		})
		if err != nil {
			cancel()
			t.Fatalf("login on %s: %v", a, err)
		}
		res, err := c.Run(ctx, sshconn.Command{Cmd: "echo $SSH_CONNECTION"})
		cancel()
		_ = c.Close()
		if err != nil || !strings.Contains(res.Stdout, " "+a+" "+strconv.Itoa(srv.Port)) {
			t.Errorf("on %s: %q, %v", a, res.Stdout, err)
		}
	}
	loaded, err := sshd.Load(srv.Dir)
	if err != nil || len(loaded.Procs) != 2 || !loaded.Running() {
		t.Fatalf("Load: %v, %+v", err, loaded)
	}
	// One process killed: the server is not running (a lab restarts it).
	if err := loaded.Procs[1].Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if loaded.Running() {
		t.Error("Running with one of two processes stopped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := loaded.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if c, err := net.Dial("tcp", srv.Addr(a)); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Stop", srv.Addr(a))
		}
	}
}

// TestPasswordLogin starts an sshd that takes a password: the right one
// logs in (host key still verified), a wrong one is refused, keys still
// work, the machine's /etc/shadow is unchanged and the password is written
// nowhere in the server's folder except as a crypt hash.
func TestPasswordLogin(t *testing.T) {
	before, err := os.ReadFile("/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	pw := "lab-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	srv := sshdtest.StartWith(t, sshd.Options{Password: pw}, "127.0.0.218")
	cfg := sshconn.Config{Host: "127.0.0.218", Port: srv.Port, User: srv.User, Password: pw, KnownHostsFile: srv.KnownHostsFile}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := sshconn.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("password login: %v", err)
	}
	res, err := c.Run(ctx, sshconn.Command{Cmd: "id -un"})
	_ = c.Close()
	if err != nil || strings.TrimSpace(res.Stdout) != srv.User {
		t.Errorf("id -un: %q, %v", res.Stdout, err)
	}
	bad := cfg
	bad.Password = pw + "x"
	if c, err := sshconn.Dial(ctx, bad); err == nil {
		c.Close()
		t.Error("a wrong password logged in")
	} else if strings.Contains(err.Error(), pw) {
		t.Errorf("error reveals the password: %v", err)
	}
	key := cfg
	key.Password, key.KeyFile = "", srv.ClientKeyFile
	if c, err := sshconn.Dial(ctx, key); err != nil {
		t.Errorf("key login with password login on: %v", err)
	} else {
		c.Close()
	}
	// A server whose known_hosts is not ours is still refused.
	other := cfg
	other.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(other.KnownHostsFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := sshconn.Dial(ctx, other); err == nil {
		c.Close()
		t.Error("logged in with an empty known_hosts")
	}
	after, err := os.ReadFile("/etc/shadow")
	if err != nil || string(after) != string(before) {
		t.Errorf("/etc/shadow changed (%v)", err)
	}
	ents, _ := os.ReadDir(srv.Dir)
	for _, e := range ents {
		data, _ := os.ReadFile(filepath.Join(srv.Dir, e.Name()))
		if strings.Contains(string(data), pw) {
			t.Errorf("%s holds the password", e.Name())
		}
	}
}
