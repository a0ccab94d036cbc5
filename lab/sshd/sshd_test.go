package sshd_test

import (
	"context"
	"net"
	"os"
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
		res, err := c.Run(ctx, sshconn.Command{Cmd: "echo $SSH_CONNECTION"})
		cancel()
		_ = c.Close()
		// SSH_CONNECTION is "client-ip client-port server-ip server-port".
		if err != nil || !strings.Contains(res.Stdout, " "+a+" "+strconv.Itoa(srv.Port)) {
			t.Errorf("on %s: %q, %v", a, res.Stdout, err)
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
