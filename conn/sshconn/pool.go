package sshconn

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Pool shares one Client per (user, host, port) among callers. It is safe for
// concurrent use; concurrent Gets for the same key dial once. The zero value
// is ready to use.
//
// Clients obtained from a Pool belong to it: do not Close them (a closed or
// broken client is replaced by a new one on the next Get). The first Config
// dialled for a key is the one used; later Gets with the same key reuse that
// connection whatever their other fields say.
type Pool struct {
	mu      sync.Mutex
	entries map[key]*poolEntry
	closed  bool
}

// poolEntry is a dialled or dialling client; ready is closed when the dial
// has finished.
type poolEntry struct {
	ready chan struct{}
	c     *Client
	err   error
}

// errPoolClosed is returned by Get after Close.
var errPoolClosed = errors.New("ssh pool is closed")

// Get returns the pool's live client for cfg's user, host and port, dialling
// one (bounded by ctx) when there is none or the previous one has died.
func (p *Pool) Get(ctx context.Context, cfg Config) (*Client, error) {
	k := cfg.key()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, fmt.Errorf("ssh %s: %w", cfg, errPoolClosed)
		}
		if p.entries == nil {
			p.entries = map[key]*poolEntry{}
		}
		e := p.entries[k]
		if e == nil {
			e = &poolEntry{ready: make(chan struct{})}
			p.entries[k] = e
			p.mu.Unlock()
			return p.dial(ctx, cfg, k, e)
		}
		p.mu.Unlock()

		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("ssh %s: waiting for the pool's connection: %w", cfg, ctx.Err())
		}
		if e.err == nil && e.c.alive() {
			return e.c, nil
		}
		// The dial failed (the dialler got its error; we try ourselves)
		// or the client died: drop the entry and go round again.
		p.mu.Lock()
		if p.entries[k] == e {
			delete(p.entries, k)
		}
		p.mu.Unlock()
	}
}

// Replace closes old, which the caller found unusable (its command could not
// be sent), unless the pool has replaced it already, and returns a live
// client for cfg as Get does: a new one unless another caller has dialled
// one meanwhile.
func (p *Pool) Replace(ctx context.Context, cfg Config, old *Client) (*Client, error) {
	k := cfg.key()
	p.mu.Lock()
	if e := p.entries[k]; e != nil && e.c == old && old != nil {
		delete(p.entries, k)
		p.mu.Unlock()
		_ = old.Close()
	} else {
		p.mu.Unlock()
	}
	return p.Get(ctx, cfg)
}

// dial dials for entry e and publishes the outcome.
func (p *Pool) dial(ctx context.Context, cfg Config, k key, e *poolEntry) (*Client, error) {
	c, err := Dial(ctx, cfg)
	p.mu.Lock()
	if err == nil && p.closed {
		_ = c.Close()
		c, err = nil, fmt.Errorf("ssh %s: %w", cfg, errPoolClosed)
	}
	e.c, e.err = c, err
	if err != nil && p.entries[k] == e {
		delete(p.entries, k)
	}
	close(e.ready)
	p.mu.Unlock()
	return c, err
}

// Close closes every client in the pool; later Gets fail.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	entries := p.entries
	p.entries = nil
	p.mu.Unlock()
	var errs []error
	for _, e := range entries {
		select {
		case <-e.ready:
		default:
			continue // its dial will see p.closed and close the client
		}
		if e.c != nil {
			errs = append(errs, e.c.Close())
		}
	}
	return errors.Join(errs...)
}
