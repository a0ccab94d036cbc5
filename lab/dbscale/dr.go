package dbscale

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Bounds of the background retries of a pending link.
const (
	retryFirstDelay = 200 * time.Millisecond
	retryMaxDelay   = 5 * time.Second
)

// pendingError is a set-up the other side refused for now: retried later.
type pendingError struct{ msg string }

func (e *pendingError) Error() string { return e.msg }

func isPending(err error) bool {
	var p *pendingError
	return errors.As(err, &p)
}

// wire sets up the replication of slave source src from the master of the
// replication datasource ds:
//
//   - src wraps a dbscale_server (a standby router): the emulator logs in to
//     that router and sends, with the routing hint /* dbscale
//     datasource=ds */, STOP SLAVE; CHANGE MASTER TO (this cluster's master
//     of ds, GTID auto-position); START SLAVE. The standby router, in
//     slave-dbscale-mode, forwards them (translated) to its own master of ds.
//   - src wraps a MySQL node: the same statements go straight to the node.
//
// The result is nil, a *pendingError (retry later) or a *mysql.MyError.
// Errors never hold a password.
func (r *Router) wire(ctx context.Context, dsName, srcName string) error {
	st := r.snapshot()
	ds := st.source(dsName)
	src := st.source(srcName)
	if ds == nil || src == nil {
		return newErr(CodeDataSource, "DataSource '%s' or '%s' no longer exists", dsName, srcName)
	}
	m := st.masterOf(ds)
	sv := st.server(src.Server)
	if m == nil || sv == nil {
		return newErr(CodeDataServer, "the servers of %s or %s no longer exist", dsName, srcName)
	}
	replUser, replPass := r.replicationCredentials(m)
	change := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, "+
		"MASTER_AUTO_POSITION=1, GET_MASTER_PUBLIC_KEY=1, MASTER_CONNECT_RETRY=5",
		quoteString(m.Host), m.Port, quoteString(replUser), quoteString(replPass))
	stmts := []string{"STOP SLAVE", change, "START SLAVE"}
	secrets := append(r.secrets(), replPass)

	ep := r.endpoint(sv)
	ep.Timeout = max(ep.Timeout, 5*time.Second)
	ep.ReadTimeout = adminReadTimeout
	what := "dataserver " + sv.Name
	if sv.DBScaleServer {
		what = "standby router " + sv.Name + " (" + ep.Addr() + ")"
	}
	conn, err := r.backend.Connect(ctx, ep)
	if err != nil {
		var me *mysql.MyError
		if errors.As(err, &me) && me.Code != CodeBackend {
			return newErr(CodeDRLink, "cannot log in to %s: %s", what, redact(me.Message, secrets...))
		}
		return &pendingError{msg: fmt.Sprintf("cannot reach %s: %s", what, redact(err.Error(), secrets...))}
	}
	defer conn.Close()
	d := dialectOf(conn.ServerVersion())
	for _, q := range stmts {
		if sv.DBScaleServer {
			q = "/* dbscale " + hintKey + "=" + dsName + " */ " + q
		} else {
			q = translate(q, keywords(q, 2), d).query
		}
		if _, err := conn.Execute(q); err != nil {
			var me *mysql.MyError
			if !errors.As(err, &me) {
				return &pendingError{msg: fmt.Sprintf("lost the connection to %s: %s", what, redact(err.Error(), secrets...))}
			}
			msg := fmt.Sprintf("%s refused the replication set-up (error %d: %s)", what, me.Code, redact(me.Message, secrets...))
			if me.Code == CodeSlaveModeOff || me.Code == CodeBackend {
				return &pendingError{msg: msg}
			}
			return newErr(CodeDRLink, "%s", msg)
		}
	}
	return nil
}

// markWired records the outcome of a set-up on the link (if it still
// exists): wired when lastErr is empty.
func (r *Router) markWired(dsName, srcName, lastErr string) {
	err := r.update(func(st *state) error {
		ds := st.source(dsName)
		if ds == nil {
			return errNoSource(dsName)
		}
		l := ds.link(srcName)
		if l == nil {
			return errNoSource(srcName)
		}
		l.Wired, l.LastError = lastErr == "", lastErr
		return nil
	})
	if err != nil && !isMyErrorCode(err, CodeDataSource) {
		r.logf("dbscale: recording the link %s -> %s: %v", srcName, dsName, err)
	}
}

// linkPending reports whether the link of srcName on dsName exists and is
// not wired yet.
func (r *Router) linkPending(dsName, srcName string) bool {
	ds := r.snapshot().source(dsName)
	if ds == nil {
		return false
	}
	l := ds.link(srcName)
	return l != nil && !l.Wired
}

// linkKey names one link: a slave source on a replication datasource. A
// source attached to several datasources has one link, and one retry, each.
type linkKey struct{ ds, src string }

// retry is one running background retry of a link.
type retry struct{ cancel context.CancelFunc }

// startRetry retries the set-up of a pending link in the background, with
// growing delays, until it works, fails for good, the link goes away, the
// router closes or Config.DRRetryTimeout runs out (logged, naming what it
// waited for).
func (r *Router) startRetry(dsName, srcName string) {
	r.retryMu.Lock()
	defer r.retryMu.Unlock()
	key := linkKey{ds: dsName, src: srcName}
	if _, ok := r.retries[key]; ok || r.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.DRRetryTimeout)
	me := &retry{cancel: cancel}
	r.retries[key] = me
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.retryMu.Lock()
			// A stopped retry may already have been replaced by a new
			// one for a re-attached link: leave that one alone.
			if r.retries[key] == me {
				delete(r.retries, key)
			}
			r.retryMu.Unlock()
			cancel()
		}()
		start := time.Now()
		delay := retryFirstDelay
		last := "no attempt yet"
		for {
			select {
			case <-ctx.Done():
				// Canceled: the router closes or the link was removed.
				if errors.Is(ctx.Err(), context.DeadlineExceeded) && r.ctx.Err() == nil {
					r.logf("dbscale: gave up setting up the replication of %s from the master of %s after %s: %s",
						srcName, dsName, time.Since(start).Round(time.Second), last)
				}
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, retryMaxDelay)
			done := func() bool {
				r.opMu.Lock()
				defer r.opMu.Unlock()
				if !r.linkPending(dsName, srcName) {
					return true
				}
				err := r.wire(ctx, dsName, srcName)
				switch {
				case err == nil:
					r.markWired(dsName, srcName, "")
					r.logf("dbscale: replication of %s from the master of %s set up after %s", srcName, dsName,
						time.Since(start).Round(time.Millisecond))
					return true
				case isPending(err):
					last = err.Error()
					r.markWired(dsName, srcName, last)
					return false
				}
				r.markWired(dsName, srcName, err.Error())
				r.logf("dbscale: setting up the replication of %s from the master of %s failed: %v", srcName, dsName, err)
				return true
			}()
			if done {
				return
			}
		}
	}()
}

// stopRetry cancels the retries of the link of srcName on dsName; the
// source's links to other datasources keep theirs.
func (r *Router) stopRetry(dsName, srcName string) {
	r.retryMu.Lock()
	defer r.retryMu.Unlock()
	key := linkKey{ds: dsName, src: srcName}
	if rt, ok := r.retries[key]; ok {
		rt.cancel()
		delete(r.retries, key)
	}
}

// retrying reports whether a background retry of the link runs (tests).
func (r *Router) retrying(dsName, srcName string) bool {
	r.retryMu.Lock()
	defer r.retryMu.Unlock()
	_, ok := r.retries[linkKey{ds: dsName, src: srcName}]
	return ok
}
