package sshconn_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"github.com/go-sql-driver/mysql"

	"github.com/flowdba/flow/conn/sshtest"
)

// blockingHandler answers "select 42" and blocks "block" until release is
// closed.
type blockingHandler struct {
	server.EmptyHandler
	release chan struct{}
}

func (h blockingHandler) HandleQuery(q string) (*gomysql.Result, error) {
	switch strings.ToLower(strings.TrimSpace(q)) {
	case "select 42":
		rs, err := gomysql.BuildSimpleTextResultset([]string{"x"}, [][]any{{42}})
		if err != nil {
			return nil, err
		}
		return gomysql.NewResult(rs), nil
	case "block":
		<-h.release
		return nil, nil
	}
	return nil, gomysql.NewError(gomysql.ER_UNKNOWN_ERROR, "unsupported: "+q)
}

// TestMySQLThroughTunnel opens a go-sql-driver connection through
// Client.DialTCP registered with mysql.RegisterDialContext, as flow does for
// MySQL instances that listen on a remote loopback address only.
func TestMySQLThroughTunnel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	release := make(chan struct{})
	defer close(release)
	msrv := server.NewServer("8.0.36-test", gomysql.DEFAULT_COLLATION_ID, gomysql.AUTH_NATIVE_PASSWORD, nil, nil)
	users := server.NewInMemoryAuthenticationHandler(gomysql.AUTH_NATIVE_PASSWORD)
	if err := users.AddUser("flow", "dbsecret"); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				conn, err := msrv.NewCustomizedConn(c, users, blockingHandler{release: release})
				if err != nil {
					return
				}
				for conn.HandleCommand() == nil {
				}
			}()
		}
	}()

	srv := sshtest.Start(t)
	c := dial(t, keyConfig(t, srv))
	network := "sshtest-" + strings.ReplaceAll(token(t), ".", "-")
	mysql.RegisterDialContext(network, c.DialTCP)

	db, err := sql.Open("mysql", "flow:dbsecret@"+network+"("+ln.Addr().String()+")/?readTimeout=300ms&writeTimeout=5s")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var x int
	if err := db.QueryRowContext(ctx, "select 42").Scan(&x); err != nil || x != 42 {
		t.Fatalf("select 42 through the tunnel: %d, %v", x, err)
	}
	// readTimeout works through the tunnel (it needs deadline support):
	// the driver gives up on the blocked query and drops the connection
	// (it logs the i/o timeout and returns ErrInvalidConn).
	_, err = db.ExecContext(ctx, "block")
	if !errors.Is(err, mysql.ErrInvalidConn) {
		t.Errorf("want the driver's read timeout (invalid connection), got %v", err)
	}
	if ctx.Err() != nil {
		t.Errorf("the query ended by the test's own timeout, not readTimeout: %v", ctx.Err())
	}
}
