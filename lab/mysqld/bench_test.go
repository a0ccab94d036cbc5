package mysqld_test

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/lab/mysqld"
	"github.com/flowdba/flow/lab/mysqltest"
)

// BenchmarkTemplate measures `mysqld --initialize-insecure` into a fresh
// template folder (what the first instance of a new install pays).
func BenchmarkTemplate(b *testing.B) {
	in, err := mysqld.Locate()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		fresh := *in
		fresh.Dir = b.TempDir()
		if _, err := fresh.Template(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProvision measures one instance from nothing to ready: copying the
// template (create-ms), mysqld_safe start to first connection (ready-ms),
// bootstrap, and the resident memory of the idle mysqld (rss-MB) and a
// clean stop (stop-ms).
func BenchmarkProvision(b *testing.B) {
	in, err := mysqld.Locate()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var create, ready, stop time.Duration
	var rss int
	n := 0
	for b.Loop() {
		b.StopTimer()
		r := mysqltest.Reserve(b)
		i := &mysqld.Instance{Install: in, Root: r.Dir, Host: r.Host, Port: r.Port}
		b.StartTimer()
		t0 := time.Now()
		if err := i.Create(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := i.Start(ctx); err != nil {
			b.Fatal(err)
		}
		if err := i.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := i.Bootstrap(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		create += t1.Sub(t0)
		ready += t2.Sub(t1)
		if pid, err := i.MysqldPID(); err == nil {
			rss += vmRSS(pid)
		}
		t3 := time.Now()
		if err := i.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		stop += time.Since(t3)
		n++
		b.StartTimer()
	}
	b.ReportMetric(float64(create.Milliseconds())/float64(n), "create-ms")
	b.ReportMetric(float64(ready.Milliseconds())/float64(n), "ready-ms")
	b.ReportMetric(float64(stop.Milliseconds())/float64(n), "stop-ms")
	b.ReportMetric(float64(rss)/1024/float64(n), "rss-MB")
}

// vmRSS returns a process's resident set size in kB.
func vmRSS(pid int) int {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	return 0
}
