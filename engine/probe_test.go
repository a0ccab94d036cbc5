package engine_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowdba/flow/engine"
)

// probeStep is a step type that exists only in these tests (`testprobe:`).
// It counts its runs per key, measures how many run at once, can fail, can
// claim to change state, and can wait until a number of probes run at the
// same time (to prove a parallel group reaches its degree).
type probeStep struct {
	// Key names the counters this probe updates.
	Key string `yaml:"key"`
	// Msg is rendered by Render (plan, dry run) and logged by Run.
	Msg *engine.Text `yaml:"msg"`
	// Changes makes the probe a state-changing step.
	Changes bool `yaml:"changes"`
	// Fail makes every run fail; FailTimes makes the first n runs fail.
	Fail      bool `yaml:"fail"`
	FailTimes int  `yaml:"fail_times"`
	// Await makes a run wait until Await probes of its key have been
	// running at the same time (bounded by awaitTimeout).
	Await int `yaml:"await"`
}

const awaitTimeout = 10 * time.Second

// probeCounters are the counters of one key.
type probeCounters struct {
	runs    atomic.Int64
	current atomic.Int64
	max     atomic.Int64
	mu      sync.Mutex
	reached chan struct{} // closed when max reaches the awaited level
	awaited int64
}

var probes sync.Map // key → *probeCounters

func probe(key string) *probeCounters {
	c, _ := probes.LoadOrStore(key, &probeCounters{reached: make(chan struct{})})
	return c.(*probeCounters)
}

// resetProbe forgets a key's counters.
func resetProbe(key string) { probes.Delete(key) }

func init() {
	engine.Register(engine.StepType{
		Name:    "testprobe",
		Summary: "a test-only step that counts its runs and measures concurrency",
		New:     func() engine.StepSpec { return &probeStep{} },
	})
}

// Mutates reports the `changes:` field.
func (p *probeStep) Mutates() bool { return p.Changes }

// Render shows the rendered message.
func (p *probeStep) Render(r *engine.Render) ([]engine.Action, error) {
	return []engine.Action{{Target: "probe " + p.Key, Text: r.Text(p.Msg)}}, nil
}

// Run counts the run, waits as told, and fails as told.
func (p *probeStep) Run(ctx context.Context, x *engine.Exec) (map[string]any, error) {
	c := probe(p.Key)
	n := c.runs.Add(1)
	cur := c.current.Add(1)
	defer c.current.Add(-1)
	for {
		m := c.max.Load()
		if cur <= m || c.max.CompareAndSwap(m, cur) {
			break
		}
	}
	if p.Await > 0 {
		c.mu.Lock()
		if c.awaited == 0 {
			c.awaited = int64(p.Await)
		}
		if c.max.Load() >= c.awaited {
			select {
			case <-c.reached:
			default:
				close(c.reached)
			}
		}
		c.mu.Unlock()
		t := time.NewTimer(awaitTimeout)
		defer t.Stop()
		select {
		case <-c.reached:
		case <-t.C:
			return nil, fmt.Errorf("probe %s: waited %s for %d probes to run at once; at most %d did", p.Key, awaitTimeout, p.Await, c.max.Load())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	msg, err := x.Text(p.Msg)
	if err != nil {
		return nil, err
	}
	if msg != "" {
		x.Infof("%s", msg)
	}
	if p.Fail || int(n) <= p.FailTimes {
		return nil, fmt.Errorf("probe %s failed on run %d as told", p.Key, n)
	}
	return map[string]any{"n": int(n), "msg": msg}, nil
}
