package steps_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdba/flow/engine"
	"github.com/flowdba/flow/engine/enginetest"
	"github.com/flowdba/flow/lab/mysqld"
	"github.com/flowdba/flow/lab/mysqltest"
)

// clonePlaybook clones `donor_host:donor_port` into the recipient. The
// donor's password is a literal of the playbook (not a secret parameter), so
// only the step itself can keep it out of the log.
func clonePlaybook(donorPassword string) string {
	return mysqltest.PlaybookHead("clone-test", "recipient", `donor_host: {type: string, required: true}`, `donor_port: {type: int, required: true}`) + `steps:
  - name: Step 16 clone donor node
    register: cl
    clone:
      on: recipient
      donor_host: "{{ donor_host }}"
      donor_port: "{{ donor_port }}"
      donor_user: flowclone
      donor_password: "` + donorPassword + `"
      buffer_size: 4M
      max_concurrency: 2
      autotune: false
      restart_timeout: 2m
      timeout: 5m
      progress: 100ms
  - assert:
      that: cl.state == "Completed" && cl.bytes > 0 && cl.seconds > 0 && cl.copy_seconds > 0 && cl.mb_per_s > 0 && len(cl.stages) >= 3
      message: "clone output {{ cl }}"
  - name: Step 17 rows on the recipient
    register: n
    sql: {on: recipient, query: "SELECT COUNT(*) AS n, @@GLOBAL.gtid_executed AS g FROM c.t"}
  - assert:
      that: gtid_equal(n.row.g, cl.gtid_executed)
      message: "gtid_executed {{ n.row.g }} is not the clone's {{ cl.gtid_executed }}"
`
}

// cloneAccounts creates the accounts the test uses: flowadmin (the
// playbook's connection, on every server, so that it survives the clone) and
// flowclone (the donor account, BACKUP_ADMIN only).
func cloneAccounts(t *testing.T, s *mysqltest.Server, adminPW, clonePW string) {
	t.Helper()
	s.Exec(t,
		fmt.Sprintf("CREATE USER 'flowadmin'@'127.%%' IDENTIFIED BY '%s'", adminPW),
		"GRANT ALL ON *.* TO 'flowadmin'@'127.%' WITH GRANT OPTION",
		fmt.Sprintf("CREATE USER 'flowclone'@'127.%%' IDENTIFIED BY '%s'", clonePW),
		"GRANT BACKUP_ADMIN ON *.* TO 'flowclone'@'127.%'")
}

func cloneVars(rec, donor *mysqltest.Server, adminPW string) map[string]string {
	return map[string]string{"host": rec.Host, "port": strconv.Itoa(rec.Port), "user": "flowadmin", "password": adminPW,
		"donor_host": donor.Host, "donor_port": strconv.Itoa(donor.Port)}
}

// adoptDonorAccounts points the test's handle of a cloned recipient at the
// donor's admin account (the recipient has the donor's accounts now).
func adoptDonorAccounts(rec, donor *mysqltest.Server) {
	rec.Password = donor.Password
	rec.Inst.AdminPassword = donor.Password
}

func assertNoSecret(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("a password leaked into the %s:\n%s", what, text)
		}
	}
}

// TestCloneAgainstMySQL clones real donors into real recipients: under
// mysqld_safe the recipient comes back with the donor's rows and GTIDs; a
// wrong password fails quoting the server; a donor whose mysql.plugin lacks
// the plugin still gives a readable outcome; without a supervisor the step
// fails at once with the 3707 explanation. The donor's password appears in
// no log line, event, listing or error.
func TestCloneAgainstMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	adminPW, clonePW := "Adm-"+mysqld.NewPassword(), "Cln-"+mysqld.NewPassword()
	donor := mysqltest.Start(t)
	cloneAccounts(t, donor, adminPW, clonePW)
	stmts := []string{"INSTALL PLUGIN clone SONAME 'mysql_clone.so'", "CREATE DATABASE c", "CREATE TABLE c.t (id INT PRIMARY KEY, v VARCHAR(200))"}
	for i := 1; i <= 200; i++ {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO c.t VALUES (%d, REPEAT('x', 200))", i))
	}
	donor.Exec(t, stmts...)
	rec := mysqltest.Start(t, mysqltest.WithSupervisor(true))
	cloneAccounts(t, rec, adminPW, "unused-"+mysqld.NewPassword())
	pb := clonePlaybook(clonePW)

	t.Run("plan and dry run change nothing and mask the password", func(t *testing.T) {
		vars := cloneVars(rec, donor, adminPW)
		plan := rawRun(t, pb, engine.ModePlan, vars, false, time.Minute, nil)
		dry := rawRun(t, pb, engine.ModeDryRun, vars, false, time.Minute, nil)
		for _, r := range []*rawResult{plan, dry} {
			if !strings.Contains(r.Out, fmt.Sprintf("CLONE INSTANCE FROM 'flowclone'@'%s':%d IDENTIFIED BY '******'", donor.Host, donor.Port)) ||
				!strings.Contains(r.Out, fmt.Sprintf("SET GLOBAL clone_valid_donor_list = '%s'", donor.Addr())) ||
				!strings.Contains(r.Out, "SET GLOBAL clone_buffer_size = 4194304") ||
				!strings.Contains(r.Out, "SET GLOBAL clone_autotune_concurrency = OFF") {
				t.Errorf("listing lacks the statements:\n%s", r.Out)
			}
			assertNoSecret(t, "listing", r.Out+r.Log, clonePW, adminPW)
		}
		if got := rec.QueryString(t, "SELECT COUNT(*) FROM INFORMATION_SCHEMA.PLUGINS WHERE PLUGIN_NAME = 'clone'"); got != "0" {
			t.Fatalf("the dry run installed the clone plugin")
		}
	})

	t.Run("supervised recipient comes back with the donor's data", func(t *testing.T) {
		res := rawRun(t, pb, engine.ModeRun, cloneVars(rec, donor, adminPW), true, 5*time.Minute, nil)
		assertNoSecret(t, "log or error", res.Log+fmt.Sprint(res.Err), clonePW, adminPW)
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		adoptDonorAccounts(rec, donor)
		if got, want := rec.QueryString(t, "SELECT CONCAT(COUNT(*), ':', SUM(LENGTH(v))) FROM c.t"), "200:40000"; got != want {
			t.Fatalf("recipient rows %s, want %s", got, want)
		}
		if got, want := rec.GTIDExecuted(t), donor.GTIDExecuted(t); got != want || got == "" {
			t.Fatalf("recipient gtid_executed %q, donor %q", got, want)
		}
		for _, want := range []string{
			fmt.Sprintf("CLONE INSTANCE FROM 'flowclone'@'%s':%d IDENTIFIED BY '******'", donor.Host, donor.Port),
			"INSTALL PLUGIN clone SONAME 'mysql_clone.so'", "SET GLOBAL clone_max_concurrency = 2",
			`"event":"clone_started"`, `"event":"clone_progress"`, `"event":"clone_finished"`, `"state":"Completed"`, "MiB/s",
		} {
			if !strings.Contains(res.Log, want) {
				t.Errorf("log lacks %q", want)
			}
		}
		t.Logf("clone log:\n%s", grepLines(res.Log, "clone", "CLONE", "recipient"))
	})

	t.Run("a wrong donor password fails quoting the server", func(t *testing.T) {
		wrong := "Wrong-" + mysqld.NewPassword()
		res := rawRun(t, clonePlaybook(wrong), engine.ModeRun, cloneVars(rec, donor, adminPW), false, 2*time.Minute, nil)
		if res.Err == nil {
			t.Fatal("a clone with a wrong password succeeded")
		}
		msg := res.Err.Error()
		t.Logf("error: %s", msg)
		for _, want := range []string{"IDENTIFIED BY '******'", "Access denied", "flowclone"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q: %s", want, msg)
			}
		}
		assertNoSecret(t, "log or error", res.Log+msg, wrong, adminPW)
	})

	t.Run("donor loading the plugin from its option file", func(t *testing.T) {
		// this donor's mysql.plugin does not list the plugin, so the
		// restarted recipient has none until the step installs it again
		donor2 := mysqltest.Start(t, mysqltest.WithClone())
		cloneAccounts(t, donor2, adminPW, clonePW)
		donor2.Exec(t, "CREATE DATABASE c", "CREATE TABLE c.t (id INT PRIMARY KEY, v VARCHAR(200))", "INSERT INTO c.t VALUES (1, 'one'), (2, 'two')")
		res := rawRun(t, pb, engine.ModeRun, cloneVars(rec, donor2, adminPW), false, 5*time.Minute, nil)
		assertNoSecret(t, "log or error", res.Log+fmt.Sprint(res.Err), clonePW, adminPW)
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		if !strings.Contains(res.Log, "installing it again to read clone_status") {
			t.Errorf("the plugin was not installed again:\n%s", res.Log)
		}
		adoptDonorAccounts(rec, donor2)
		if got := rec.QueryString(t, "SELECT GROUP_CONCAT(v ORDER BY id) FROM c.t"); got != "one,two" {
			t.Fatalf("recipient rows %q", got)
		}
		if got, want := rec.GTIDExecuted(t), donor2.GTIDExecuted(t); got != want {
			t.Fatalf("recipient gtid_executed %q, donor %q", got, want)
		}
	})

	t.Run("into a data directory: the recipient keeps its data and does not restart", func(t *testing.T) {
		// no supervisor: a restart would fail with 3707
		live := mysqltest.Start(t, mysqltest.WithSupervisor(false))
		cloneAccounts(t, live, adminPW, "unused-"+mysqld.NewPassword())
		live.Exec(t, "CREATE DATABASE own", "CREATE TABLE own.t (id INT PRIMARY KEY)", "INSERT INTO own.t VALUES (7)")
		before := live.QueryString(t, "SELECT @@server_uuid")
		dir := filepath.Join(t.TempDir(), "snap")
		pb := strings.Replace(clonePlaybook(clonePW), "      progress: 100ms\n", "      progress: 100ms\n      data_directory: "+dir+"\n", 1)
		// the snapshot is not the recipient's data: assert the clone's outcome only
		pb = pb[:strings.Index(pb, "  - name: Step 17 rows on the recipient")]
		dry := rawRun(t, pb, engine.ModeDryRun, cloneVars(live, donor, adminPW), false, time.Minute, nil)
		if want := "IDENTIFIED BY '******' DATA DIRECTORY = '" + dir + "'"; !strings.Contains(dry.Out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, dry.Out)
		}
		res := rawRun(t, pb, engine.ModeRun, cloneVars(live, donor, adminPW), true, 5*time.Minute, nil)
		assertNoSecret(t, "log or error", res.Log+dry.Out+dry.Log+fmt.Sprint(res.Err), clonePW, adminPW)
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, res.Log)
		}
		// the same server, its own data untouched; the donor's rows in the folder
		if got := live.QueryString(t, "SELECT CONCAT(@@server_uuid, ':', (SELECT id FROM own.t))"); got != before+":7" {
			t.Errorf("recipient after the clone: %q, want %s:7 (its own data, no restart)", got, before)
		}
		for _, f := range []string{"mysql.ibd", "c/t.ibd"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("the snapshot lacks %s: %v", f, err)
			}
		}
		if !strings.Contains(res.Log, "the snapshot is in "+dir) {
			t.Errorf("log does not say where the snapshot is:\n%s", grepLines(res.Log, "clone", "CLONE"))
		}
		// the folder exists now (as after an aborted clone, which leaves its
		// partial copy): the step says which folder to remove
		again := rawRun(t, pb, engine.ModeRun, cloneVars(live, donor, adminPW), false, 2*time.Minute, nil)
		if again.Err == nil || !strings.Contains(again.Err.Error(), "rm -rf "+dir) || !strings.Contains(again.Err.Error(), "1007") {
			t.Errorf("a clone into an existing folder: %v; want MySQL's 1007 and the folder to remove", again.Err)
		}
		assertNoSecret(t, "log or error", again.Log+fmt.Sprint(again.Err), clonePW, adminPW)
	})

	t.Run("no supervisor: error 3707 explained at once", func(t *testing.T) {
		bare := mysqltest.Start(t, mysqltest.WithSupervisor(false))
		cloneAccounts(t, bare, adminPW, "unused-"+mysqld.NewPassword())
		res := rawRun(t, pb, engine.ModeRun, cloneVars(bare, donor, adminPW), true, 2*time.Minute, nil)
		if res.Err == nil {
			t.Fatalf("a clone into an unsupervised recipient succeeded:\n%s", res.Log)
		}
		msg := res.Err.Error()
		t.Logf("error: %s", msg)
		for _, want := range []string{"the recipient has no supervisor (mysqld_safe/systemd) to restart it", "3707", "start it by hand", "copied the data"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q: %s", want, msg)
			}
		}
		assertNoSecret(t, "log or error", res.Log+msg, clonePW, adminPW)
	})
}

// grepLines returns the lines of s containing any of words.
func grepLines(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestCloneLoadErrors checks the fields' validation when a playbook loads.
func TestCloneLoadErrors(t *testing.T) {
	base := strings.Split(clonePlaybook("x"), "      donor_host:")[0]
	for _, c := range []struct{ fields, want string }{
		{"      donor_host: h\n", "needs `donor_port:`"},
		{"      donor_host: h\n      donor_port: 99999\n      donor_user: u\n      donor_password: p\n", "`donor_port: 99999` is not a TCP port"},
		{"      donor_host: h\n      donor_port: 1\n      donor_user: u\n      donor_password: p\n      buffer_size: lots\n", "`buffer_size: lots`: not a size"},
		{"      donor_host: h\n      donor_port: 1\n      donor_user: u\n      donor_password: p\n      autotune: maybe\n", "`autotune: maybe`: not a boolean"},
		{"      donor_host: h\n      donor_port: 1\n      donor_user: u\n      donor_password: p\n      max_concurrency: 0\n", "`max_concurrency: 0` must be a whole number"},
		{"      donor_host: h\n      donor_port: 1\n      donor_user: u\n      donor_password: p\n      restart_timeout: 5\n", "`restart_timeout: 5`: not a duration"},
		{"      donor_host: h\n      donor_port: 1\n      donor_user: \"{{ password }}\"\n      donor_password: p\n", "would carry a secret into a log"},
	} {
		_, diags := engine.Load(enginetest.Write(t, base+c.fields, nil))
		if !strings.Contains(diags.Error(), c.want) {
			t.Errorf("%q: want %q, got %v", c.fields, c.want, diags)
		}
	}
}

// TestClonePlanOffline renders the clone without any server: the password,
// literal or a secret parameter, is masked.
func TestClonePlanOffline(t *testing.T) {
	pb := `name: clone-plan
params:
  pw: {type: string, required: true, secret: true}
  donor: {type: map, default: {host: 127.0.0.5, port: 16315}}
connections:
  rec: {mysql: {host: 127.0.0.6, port: 18000, user: admin, password: "{{ pw }}"}}
steps:
  - name: Step 16 clone (secret parameter)
    clone: {on: rec, donor_host: "{{ donor.host }}", donor_port: "{{ donor.port }}", donor_user: admin, donor_password: "{{ pw }}"}
  - name: Step 17 clone (literal)
    clone: {on: rec, donor_host: 127.0.0.7, donor_port: 16315, donor_user: "O'Neil", donor_password: "Literal-Pass-99", buffer_size: 32M, max_concurrency: 32, autotune: true, timeout: 1h}
`
	res := rawRun(t, pb, engine.ModePlan, map[string]string{"pw": "Param-Pass-42"}, false, time.Minute, nil)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, want := range []string{
		"on mysql rec (127.0.0.6:18000):",
		"SET GLOBAL clone_valid_donor_list = '127.0.0.5:16315'",
		"CLONE INSTANCE FROM 'admin'@'127.0.0.5':16315 IDENTIFIED BY '******'",
		"CLONE INSTANCE FROM 'O''Neil'@'127.0.0.7':16315 IDENTIFIED BY '******'",
		"SET GLOBAL clone_buffer_size = 33554432", "SET GLOBAL clone_max_concurrency = 32", "SET GLOBAL clone_autotune_concurrency = ON",
		"wait up to 5m for it", "(step timeout 6h)", "(step timeout 1h)", "Summary: 2 change(s)",
	} {
		if !strings.Contains(res.Out, want) {
			t.Errorf("plan lacks %q:\n%s", want, res.Out)
		}
	}
	assertNoSecret(t, "plan", res.Out+res.Log, "Param-Pass-42", "Literal-Pass-99")
}

// cloneState reads the state of the recipient's clone started at or after
// since, as the connection's account (which exists on the donor too, so it
// works before and after the clone); "down" when the recipient does not
// answer, "" when there is no such clone.
func cloneState(db *sql.DB, since string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var st string
	err := db.QueryRowContext(ctx, "SELECT STATE FROM performance_schema.clone_status WHERE BEGIN_TIME >= ?", since).Scan(&st)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ""
	case err != nil:
		return "down"
	}
	return st
}

// TestCloneResume drives the clone step's resume decisions with real
// clones: a failed clone is run again; a clone still running (or its
// recipient restarting) is joined and then done, with the output the step
// gives after a clone; a completed clone is done without cloning again; a
// clone from another donor is run again.
func TestCloneResume(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MySQL")
	}
	adminPW, clonePW := "Adm-"+mysqld.NewPassword(), "Cln-"+mysqld.NewPassword()
	donor := mysqltest.Start(t)
	cloneAccounts(t, donor, adminPW, clonePW)
	donor.Exec(t, "INSTALL PLUGIN clone SONAME 'mysql_clone.so'", "CREATE DATABASE c", "CREATE TABLE c.t (id INT PRIMARY KEY, v VARCHAR(200))",
		"INSERT INTO c.t VALUES (1, 'one'), (2, 'two')")
	rec := mysqltest.Start(t, mysqltest.WithSupervisor(true))
	cloneAccounts(t, rec, adminPW, "unused-"+mysqld.NewPassword())
	pb := clonePlaybook(clonePW)
	key := stepKey(t, pb, "Step 16 clone donor node")
	vars := cloneVars(rec, donor, adminPW)
	db, err := sql.Open("mysql", fmt.Sprintf("flowadmin:%s@tcp(%s)/?timeout=2s&readTimeout=2s", adminPW, rec.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clones := func(a *attempt) int { return len(a.Events.named("clone_started")) }

	t.Run("failed: run again", func(t *testing.T) {
		wrong := "Wrong-" + mysqld.NewPassword()
		first := runAttempt(t, clonePlaybook(wrong), vars, nil, nil, 2*time.Minute, nil)
		if first.Err == nil || !strings.Contains(first.Err.Error(), "3862") {
			t.Fatalf("the clone with a wrong password did not fail: %v", first.Err)
		}
		rs := first.Events.state()
		if r := rs.Steps[key]; r == nil || r.Status != engine.StepFailed || r.Notes["since"] == nil || r.Notes["donor"] != donor.Addr() {
			t.Fatalf("journal state of %s: %+v", key, rs.Steps[key])
		}
		res := runAttempt(t, pb, vars, nil, rs, 2*time.Minute, nil)
		res.wantDecision(t, key, "rerun", "clone_status", "says Failed (error 3862")
		if res.Err != nil || clones(res) != 1 {
			t.Fatalf("resume: %v (%d clones)\n%s", res.Err, clones(res), res.Log)
		}
		assertNoSecret(t, "log or error", res.Log+first.Log+fmt.Sprint(first.Err), clonePW, wrong, adminPW)
	})

	var atNote *engine.ResumeState // the journal of an attempt as it sends CLONE INSTANCE
	t.Run("in progress: joined, then done", func(t *testing.T) {
		noted := make(chan string, 1)
		ev := &journalEvents{}
		ev.on = func(name string, f map[string]any) {
			if name == "step_note" {
				atNote = ev.state()
				select {
				case noted <- fmt.Sprint(f["since"]):
				default:
				}
			}
		}
		loaded := enginetest.Load(t, enginetest.Write(t, pb, nil))
		firstDone := make(chan *attempt, 1)
		go func() { firstDone <- runLoaded(loaded, vars, nil, nil, 2*time.Minute, ev, "first") }()
		var since string
		select {
		case since = <-noted:
		case first := <-firstDone:
			t.Fatalf("the first attempt noted nothing: %v\n%s", first.Err, first.Log)
		}
		// resume as if flow had died once the clone was under way
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(time.Minute)
		for st := cloneState(db, since); st != "In Progress" && st != "down"; st = cloneState(db, since) {
			if st == "Completed" {
				t.Fatalf("never saw the clone in progress (clone_status %q)", st)
			}
			select {
			case <-tick.C:
			case <-deadline:
				t.Fatalf("the clone was not seen in progress within a minute (clone_status %q)", st)
			}
		}
		t.Logf("resuming while the first attempt's clone runs")
		res := runAttempt(t, pb, vars, nil, atNote, 2*time.Minute, nil)
		t.Logf("resumed run:\n%s", grepLines(res.Log, "earlier attempt", "interrupted", "clone"))
		if j := res.Events.named("step_joined"); len(j) != 1 || !strings.Contains(fmt.Sprint(j[0]["why"]), "was still running") {
			t.Fatalf("step_joined: %v\n%s", j, res.Log)
		}
		res.wantDecision(t, key, "done", "says Completed, cloned from "+donor.Addr())
		if res.Err != nil || clones(res) != 0 {
			t.Fatalf("resume: %v (%d clones)\n%s", res.Err, clones(res), res.Log)
		}
		if first := <-firstDone; first.Err != nil {
			t.Fatalf("first attempt: %v\n%s", first.Err, first.Log)
		}
	})

	t.Run("completed: done without cloning again", func(t *testing.T) {
		if atNote == nil {
			t.Skip("needs the journal of the clone above")
		}
		res := runAttempt(t, pb, vars, nil, atNote, time.Minute, nil)
		if j := res.Events.named("step_joined"); len(j) != 0 {
			t.Fatalf("joined a finished clone: %v", j)
		}
		res.wantDecision(t, key, "done", "says Completed")
		if res.Err != nil || clones(res) != 0 {
			t.Fatalf("resume: %v (%d clones)\n%s", res.Err, clones(res), res.Log)
		}
	})

	t.Run("completed from another donor: run again", func(t *testing.T) {
		if atNote == nil {
			t.Skip("needs the journal of the clone above")
		}
		other := cloneVars(rec, donor, adminPW)
		other["donor_host"] = "127.0.0.1" // where no donor listens: the clone that runs again fails at once
		res := runAttempt(t, pb, other, nil, atNote, time.Minute, nil)
		res.wantDecision(t, key, "rerun", "cloned from "+donor.Addr()+", not from this step's donor 127.0.0.1:")
		if clones(res) != 1 || res.Err == nil {
			t.Fatalf("the clone did not run again (%d clones): %v", clones(res), res.Err)
		}
	})
}
