package sshconn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// killTimeout bounds one kill(1) session, including the remote login
// shell's start-up (which can take a good part of a second on hosts with
// heavy shell rc files).
const killTimeout = 30 * time.Second

// killReq asks for sig to be sent to the process group led by pid.
type killReq struct {
	sig  string
	pid  int
	done chan error // receives exactly one result
}

// killGroup sends sig to the remote process group led by pid by running
// kill(1) in a separate session, and waits for the outcome while ctx allows.
//
// Requests are batched: at most maxKillSessions kill sessions run at once,
// each handling every request queued when it starts, so cancelling many
// commands together costs a couple of shell start-ups, not one each, and
// never needs more sessions than OpenSSH allows.
func (c *Client) killGroup(ctx context.Context, pid int, sig ssh.Signal) error {
	if pid <= 0 {
		return errors.New("no remote pid")
	}
	name := string(sig)
	if name == "" || strings.Trim(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
		return fmt.Errorf("invalid signal name %q", name)
	}
	req := killReq{sig: name, pid: pid, done: make(chan error, 1)}
	c.killMu.Lock()
	c.killQueue = append(c.killQueue, req)
	c.killMu.Unlock()
	// Start a worker when a kill slot is free; otherwise a running worker
	// takes the request when its current batch is done (a worker only
	// gives up its slot after finding the queue empty).
	select {
	case c.killSem <- struct{}{}:
		go c.killWorker()
	default:
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("kill -s %s -- -%d: %w (it is still sent in the background)", name, pid, ctx.Err())
	}
}

// killWorker runs batches until the queue is empty, then frees its slot.
func (c *Client) killWorker() {
	for {
		c.killMu.Lock()
		batch := c.killQueue
		c.killQueue = nil
		if len(batch) == 0 {
			<-c.killSem
			c.killMu.Unlock()
			return
		}
		c.killMu.Unlock()
		c.runKills(batch)
	}
}

// runKills runs one session whose script sends every signal of batch and
// prints each kill's exit status on its own line, then answers each request.
func (c *Client) runKills(batch []killReq) {
	var script strings.Builder
	for _, r := range batch {
		// sig is [A-Z0-9]+ and pid an integer: nothing here needs quoting.
		fmt.Fprintf(&script, "kill -s %s -- -%d 2>/dev/null; echo $?\n", r.sig, r.pid)
	}
	// A session that ends without reporting the statuses (sshd can drop
	// one while reaping many killed processes) is tried again, bounded.
	var out string
	var err error
	deadline := time.Now().Add(killTimeout)
	for attempt := 0; attempt < 3 && time.Now().Before(deadline); attempt++ {
		out, err = c.runSimple(script.String(), time.Until(deadline))
		if err == nil || len(strings.Fields(out)) > 0 || !c.alive() {
			break
		}
	}
	lines := strings.Fields(out)
	for i, r := range batch {
		switch {
		case i < len(lines) && lines[i] == "0":
			r.done <- nil
		case i < len(lines):
			r.done <- fmt.Errorf("kill -s %s -- -%d: exit status %s (no such process group?)", r.sig, r.pid, lines[i])
		case err != nil:
			r.done <- fmt.Errorf("kill -s %s -- -%d: %w", r.sig, r.pid, err)
		default:
			r.done <- fmt.Errorf("kill -s %s -- -%d: no result", r.sig, r.pid)
		}
	}
}

// runSimple runs script in a new session (outside the command slots) and
// returns its stdout, bounded by timeout.
func (c *Client) runSimple(script string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sess, err := c.newSession(ctx)
	if err != nil {
		return "", c.connErr(err)
	}
	defer sess.Close()
	var out lockedBuffer
	sess.Stdout = &out
	done := make(chan error, 1)
	go func() { done <- sess.Run(script) }()
	select {
	case err := <-done:
		return out.String(), err
	case <-ctx.Done():
		return out.String(), ctx.Err()
	}
}
